"""Which incidents need work now: the recovery loop's queue, read from the incident rows themselves.

Nothing is handed to the loop in memory; each tick it asks the database (indexed queries):

- ``open`` or ``awaiting_approval`` and due: never worked on, a retry whose ``next_attempt_at`` came,
  an approval given (the operator moved it back to ``open``) or timed out;
- ``recovering`` with its run lease free: its owner died, lost the database, or hung;
- found active at start-up (left by an earlier process): at once, for the fresh check before acting;
- ``blocked`` whose cause cleared (:func:`cause_cleared`: the dependency is no longer DOWN, the mass
  outage ended, the sentinels answer, the hold or the flapping ended, the plan came back, automation
  was switched on), or whose periodic re-check (``BLOCKED_RECHECK_S``) is due.

Only rows whose lease is free are returned; the loop still claims each by compare-and-set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from orchestrator.core.states import ComponentState, DegradationLevel, IncidentStatus, level_rank
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, Incident
from orchestrator.recovery.claims import lease_free
from orchestrator.recovery.health_view import HealthView

S = IncidentStatus
#: A blocked incident is evaluated again at least this often, whatever its guard.
BLOCKED_RECHECK_S = 30.0
_HOLDS = (ComponentState.PAUSED, ComponentState.MAINTENANCE)


@dataclass(frozen=True)
class Candidate:
    """An incident the loop may claim."""

    incident_id: int
    status: str
    #: None for an incident found at start-up whose component was removed since (the column is SET NULL)
    component_id: int | None


@dataclass(frozen=True)
class Circumstances:
    """What the blocked incidents' causes are judged against, read once per tick."""

    health: HealthView
    outage_open: bool
    plan_names: frozenset[str]
    error_handling_enabled: bool
    degradation_level: str = "normal"


#: Any incident of a component the loop could have work on (the statuses ``due`` and ``unblocked`` read).
_ANY_ACTIVE = (select(Incident.id)
               .where(Incident.component_id.is_not(None),
                      Incident.status.in_([S.OPEN.value, S.AWAITING_APPROVAL.value, S.RECOVERING.value,
                                           S.BLOCKED.value]))
               .limit(1))


def any_active(db: Database) -> bool:
    """Whether any component's incident is open, awaiting approval, recovering or blocked: one indexed
    Core query, built once. Without one, ``due`` and ``unblocked`` have nothing to find (the idle
    daemon's look at the rows is this query alone)."""
    with db.engine.connect() as conn:
        return conn.execute(_ANY_ACTIVE).first() is not None


def due(db: Database, *, now: datetime, owner: str, exclusive: bool, limit: int) -> list[Candidate]:
    """Open/awaiting incidents that are due, and recovering ones whose owner is gone (oldest first)."""
    waiting = Incident.status.in_([S.OPEN.value, S.AWAITING_APPROVAL.value]) & or_(
        Incident.next_attempt_at.is_(None), Incident.next_attempt_at <= now)
    stmt = (select(Incident.id, Incident.status, Incident.component_id)
            .where(Incident.component_id.is_not(None), waiting | (Incident.status == S.RECOVERING.value),
                   lease_free(db, owner, exclusive=exclusive))
            .order_by(Incident.id).limit(limit))
    with db.read() as session:
        return [Candidate(*row) for row in session.execute(stmt)]


def not_waiting(db: Database, found: list[Candidate], waiting: Mapping[int, datetime]) -> list[Candidate]:
    """``found`` without the incidents whose wait this process still runs on the monotonic clock, unless
    their ``next_attempt_at`` moved since it was written (an approval, another writer)."""
    mine = [c.incident_id for c in found if c.incident_id in waiting]
    if not mine:
        return found
    with db.read() as session:
        stored = dict(session.execute(select(Incident.id, Incident.next_attempt_at).where(Incident.id.in_(mine))).all())
    held = {iid for iid in mine if stored.get(iid) == waiting[iid]}
    return [c for c in found if c.incident_id not in held]


def inherited(db: Database, ids: set[int], *, owner: str, exclusive: bool) -> list[Candidate]:
    """Incidents found active at start-up, due or not: each gets its fresh check at once."""
    if not ids:
        return []
    active = [S.OPEN.value, S.AWAITING_APPROVAL.value, S.RECOVERING.value, S.BLOCKED.value]
    stmt = (select(Incident.id, Incident.status, Incident.component_id)
            .where(Incident.id.in_(sorted(ids)), Incident.status.in_(active),
                   lease_free(db, owner, exclusive=exclusive)).order_by(Incident.id))
    with db.read() as session:
        return [Candidate(*row) for row in session.execute(stmt)]


def unblocked(db: Database, *, now: datetime, owner: str, exclusive: bool,
              world: Circumstances) -> list[Candidate]:
    """Blocked incidents whose cause cleared or whose re-check is due."""
    stmt = (select(Incident.id, Incident.component_id, Incident.details, Incident.next_attempt_at, Component.plan)
            .join(Component, Component.id == Incident.component_id)
            .where(Incident.status == S.BLOCKED.value, lease_free(db, owner, exclusive=exclusive))
            .order_by(Incident.id))
    with db.read() as session:
        rows = session.execute(stmt).all()
    return [Candidate(iid, S.BLOCKED.value, cid) for iid, cid, details, next_at, plan in rows
            if (next_at is not None and next_at <= now) or cause_cleared(cid, details or {}, plan, world)]


def cause_cleared(component_id: int, details: dict[str, Any], plan: str | None, world: Circumstances) -> bool:
    """True when the guard that blocked the incident would now let it through (or may: it is looked at)."""
    check = _CLEARED.get(str(details.get("guard")))
    return check is not None and check(component_id, details, plan, world)


def _dependency(cid: int, details: dict[str, Any], plan: str | None, world: Circumstances) -> bool:
    blocker = details.get("blocked_by_id")
    return blocker is None or world.health.state(int(blocker)) is not ComponentState.DOWN


def _changed(cid: int, details: dict[str, Any], plan: str | None, world: Circumstances) -> bool:
    """Holds and flapping end with a change of the component itself: its state or flap episode."""
    state = world.health.state(cid)
    if state in _HOLDS:
        return False
    return (state.value != details.get("blocked_state")
            or world.health.flap_episode(cid) != details.get("blocked_episode"))


_CLEARED: dict[str, Callable[[int, dict[str, Any], str | None, Circumstances], bool]] = {
    "dependency": _dependency,
    "blast_radius": lambda cid, d, plan, w: not w.outage_open,
    "sentinels": lambda cid, d, plan, w: w.health.view_reliable(),
    "hold": _changed,
    "flapping": _changed,
    "no_plan": lambda cid, d, plan, w: plan is not None and plan in w.plan_names,
    "observe_only": lambda cid, d, plan, w: w.error_handling_enabled,
    # a lower level than when it was blocked may allow the step (it is looked at again); only the
    # operator's EMERGENCY override holds a step (orchestrator.degradation.actions), so any other level
    # wakes it whatever was recorded
    "degradation": lambda cid, d, plan, w: w.degradation_level != DegradationLevel.EMERGENCY.value or level_rank(
        w.degradation_level) < level_rank(d.get("blocked_level") or "emergency"),
}
