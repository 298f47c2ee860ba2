"""Escalation policies and routing: which targets hear of an event, and reminders and tiers while nobody acks.

Configured in ``notifications`` of recovery_strategies.json (docs/recovery_strategies.md#escalation);
the defaults are the behaviour without them: every event to the top-level ``urls``/``webhooks``, no
reminder, no tier.

Routing (:func:`route`) is pure: an event goes to the targets of every route whose selector, criticality
and event list match it, else to the top-level targets. Reminders and tiers (:class:`Escalator`):

1. an incident that is active, not acknowledged and has no ``next_reminder_at`` is armed: the next is
   its opening time plus the shorter of ``remind_every`` and the first tier's ``after``;
2. each :meth:`Escalator.tick` takes the incidents whose ``next_reminder_at`` came, each by
   compare-and-set on that column (two processes never both send it, a restart neither loses nor
   doubles it: the time is in the database); it writes a ``escalation`` event for every tier reached
   and a ``reminder`` event when a reminder is due, on the incident's timeline, and moves the time on;
3. an incident acknowledged (``incidents ack``) or resolved has its time cleared: reminders stop.

The waits run on the monotonic clock while this process lives (:class:`WallDeadlines`, as the recovery
loop's): a wall clock stepped back does not hold a reminder, one stepped forward does not fire them early.
Serves I2 of docs/guarantees.md (an incident that calls a person keeps calling until one takes it)
and must never break the design's time invariant (DESIGN invariant 7: waits on the monotonic clock,
wall time only written down) nor send a reminder twice (the compare-and-set on the stored time).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.durations import parse_duration
from orchestrator.core.states import ACTIVE_INCIDENT_STATUSES
from orchestrator.db.engine import Database, rows_changed
from orchestrator.db.models import Incident
from orchestrator.incidents import events
from orchestrator.incidents.notify_send import AppriseUrl, Webhook
from orchestrator.resilience.deadlines import WallDeadlines

log = logging.getLogger("orchestrator.incidents.escalation")

Positive = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
#: The event kinds the escalator writes (always sent when a policy is configured).
REMINDER, ESCALATION = "reminder", "escalation"
#: Incidents looked at per tick at most (a backlog after a long stop drains over a few ticks).
TICK_LIMIT = 200
_ACTIVE = [s.value for s in ACTIVE_INCIDENT_STATUSES]
Criticality = Literal["critical", "high", "normal", "low"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Target(_Model):
    """A named set of destinations (``notifications.targets.NAME``)."""

    urls: list[AppriseUrl] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)


class Route(_Model):
    """Events matching every given condition go to ``targets`` (names in ``notifications.targets``)."""

    #: labels the component must carry (all of them); {} matches every component
    match: dict[str, str] = Field(default_factory=dict)
    #: the component's criticality is one of these; [] matches any
    criticality: list[Criticality] = Field(default_factory=list)
    #: the event kind is one of these; [] matches any
    events: list[str] = Field(default_factory=list)
    targets: list[str] = Field(min_length=1)


class Tier(_Model):
    """Unacknowledged this long after opening: tell ``targets`` too (and include them in later reminders)."""

    after_s: Positive = Field(alias="after")
    targets: list[str] = Field(min_length=1)


class Escalation(_Model):
    """Reminders while an incident is open and unacknowledged, and tiers."""

    #: None (the default): no reminders
    remind_every_s: Positive | None = Field(None, alias="remind_every")
    tiers: list[Tier] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> Escalation:
        afters = [t.after_s for t in self.tiers]
        if afters != sorted(set(afters)):
            raise ValueError("tiers must have increasing 'after' times")
        return self

    @property
    def active(self) -> bool:
        return self.remind_every_s is not None or bool(self.tiers)


def check_names(targets: Mapping[str, Target], routes: list[Route], escalation: Escalation) -> None:
    """ValueError naming the first route or tier that names a target not defined."""
    for where, names in ([(f"routes[{i}]", r.targets) for i, r in enumerate(routes)]
                         + [(f"escalation.tiers[{i}]", t.targets) for i, t in enumerate(escalation.tiers)]):
        unknown = [n for n in names if n not in targets]
        if unknown:
            raise ValueError(f"{where}.targets: no target named {unknown[0]!r}; targets: "
                             f"{', '.join(sorted(targets)) or 'none'}")


def route(kind: str, labels: Mapping[str, str], criticality: str | None, routes: list[Route]) -> list[str] | None:
    """The target names an event goes to; None: no route matched (the top-level targets)."""
    found: list[str] = []
    for r in routes:
        if r.events and kind not in r.events:
            continue
        if r.criticality and criticality not in r.criticality:
            continue
        if any(labels.get(k) != v for k, v in r.match.items()):
            continue
        found += [t for t in r.targets if t not in found]
    return found or None


def tier_targets(policy: Escalation, tier: int) -> list[str]:
    """The targets of tiers 1..``tier``, in order."""
    names: list[str] = []
    for t in policy.tiers[:tier]:
        names += [n for n in t.targets if n not in names]
    return names


def _next(policy: Escalation, opened: datetime, tier: int, reminder_at: datetime | None) -> datetime | None:
    """The earliest of the next reminder and the next tier's time."""
    times = [t for t in (reminder_at, *([opened + timedelta(seconds=policy.tiers[tier].after_s)]
                                       if tier < len(policy.tiers) else [])) if t is not None]
    return min(times, default=None)


class Escalator:
    """Writes reminder and tier events for unacknowledged incidents (see the module docstring)."""

    def __init__(self, db: Database, policy: Escalation, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.db, self.policy, self.clock = db, policy, clock
        self._waits = WallDeadlines[int]()

    def tick(self) -> int:
        """Arm new incidents, then fire what is due; the number of events written."""
        policy = self.policy
        if not policy.active:
            return 0
        now, mono = self.clock.now(), self.clock.monotonic()
        horizon = self._waits.horizon(now, mono)
        waiting = self._waits.waiting(mono)
        written = 0
        with self.db.write() as session:
            self._arm(session, policy, now, mono)
            due = session.execute(select(Incident.id, Incident.next_reminder_at).where(
                Incident.next_reminder_at.is_not(None), Incident.next_reminder_at <= horizon)
                .order_by(Incident.next_reminder_at).limit(TICK_LIMIT)).all()
        mine = self._waits.known()
        for incident_id, at in due:
            assert at is not None  # the query asked for next_reminder_at IS NOT NULL
            if waiting.get(incident_id) == at:
                continue  # its wall time came, its monotonic one did not (the wall clock jumped)
            # a wait this process ran on the monotonic clock is decided at its own due time, so a wall
            # clock step cannot skip reminders or reach tiers early; one inherited is decided at the wall
            decided = at if incident_id in mine else now
            with self.db.write() as session:
                written += self._fire(session, policy, incident_id, at, now, decided, mono)
        self._waits.expire(mono)
        return written

    def _arm(self, session: Session, policy: Escalation, now: datetime, mono: float) -> None:
        unarmed = [Incident.status.in_(_ACTIVE), Incident.acked_at.is_(None), Incident.next_reminder_at.is_(None),
                   Incident.reminders_sent == 0]
        if policy.remind_every_s is None:  # tiers only: one past its last tier has nothing left to arm
            unarmed.append(Incident.escalation_tier < len(policy.tiers))
        rows = session.execute(select(Incident.id, Incident.opened_at, Incident.escalation_tier).where(*unarmed)
                               .order_by(Incident.id).limit(TICK_LIMIT)).all()
        for incident_id, opened, tier in rows:
            first = policy.remind_every_s and opened + timedelta(seconds=policy.remind_every_s)
            at = _next(policy, opened, tier, first or None)
            if at is not None and rows_changed(session.execute(update(Incident).where(
                    Incident.id == incident_id, Incident.next_reminder_at.is_(None))
                    .values(next_reminder_at=at))) == 1:
                self._waits.set(incident_id, at, now=now, mono=mono)

    def _fire(self, session: Session, policy: Escalation, incident_id: int, at: datetime, now: datetime, decided: datetime,
              mono: float) -> int:
        """Write what is due at ``decided`` (events stamped ``now``) and move the stored time on, by
        compare-and-set on ``at``; the number of events written."""
        incident = session.get(Incident, incident_id)
        if incident is None or incident.next_reminder_at != at:
            return 0  # another process moved it first
        if incident.status not in _ACTIVE or incident.acked_at is not None:
            session.execute(update(Incident).where(Incident.id == incident_id, Incident.next_reminder_at == at)
                            .values(next_reminder_at=None))
            self._waits.set(incident_id, None, now=now, mono=mono)
            return 0
        written, tier, sent = 0, incident.escalation_tier, incident.reminders_sent
        open_for = decided - incident.opened_at
        while tier < len(policy.tiers) and open_for >= timedelta(seconds=policy.tiers[tier].after_s):
            tier += 1
            events.record(session, incident_id, ESCALATION, now, reason=(
                f"tier {tier}: not acknowledged {_minutes(policy.tiers[tier - 1].after_s)} after opening; "
                f"telling {', '.join(policy.tiers[tier - 1].targets)}"))
            written += 1
        reminder_at = None
        if policy.remind_every_s:  # reminder n is due at opened + n × every; `sent` is the last one's n
            every = timedelta(seconds=policy.remind_every_s)
            if incident.opened_at + every * (sent + 1) <= decided:
                # after a long stop: one reminder for the periods missed, not the backlog
                sent = int(open_for / every)
                events.record(session, incident_id, REMINDER, now, reason=(
                    f"reminder {sent}: {incident.status} for {_minutes(open_for.total_seconds())}, not acknowledged"))
                written += 1
            reminder_at = incident.opened_at + every * (sent + 1)
        nxt = _next(policy, incident.opened_at, tier, reminder_at)
        moved = rows_changed(session.execute(
            update(Incident).where(Incident.id == incident_id, Incident.next_reminder_at == at)
            .values(next_reminder_at=nxt, escalation_tier=tier, reminders_sent=sent)))
        if moved != 1:
            session.rollback()
            return 0
        self._waits.set(incident_id, nxt, now=decided, mono=mono)  # the next wait runs from the decision
        if written:
            log.info("incident=%s escalation: tier %s, %s reminders", incident_id, tier, sent)
        return written


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def targets_of(kind: str, labels: Mapping[str, str], criticality: str | None, tier: int, *,
               routes: list[Route], policy: Escalation) -> tuple[bool, list[str]]:
    """Where one event goes: (the top-level targets too?, named targets). Its routes decide (no route
    matched: the top-level targets); reminders and tier events also go to every tier reached."""
    named = route(kind, labels, criticality, routes)
    extra = tier_targets(policy, tier) if kind in (REMINDER, ESCALATION) else []
    return named is None, list(dict.fromkeys([*(named or []), *extra]))
