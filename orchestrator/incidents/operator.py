"""What operators do with incidents (list, show, ack, approve, resolve, note): the service layer behind CLI and API.

Returns plain dicts (the stable JSON shapes ``--json`` prints), redacted with the component's secret
values (journal rows are stored redacted; this also covers rows written before a secret was set);
every mutation writes an audit row in its own transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import ConflictError, InputError, NotFoundError
from orchestrator.core.redaction import redact_view, secret_values
from orchestrator.core.states import IncidentStatus, Resolution
from orchestrator.db import audit
from orchestrator.db.audit import Actor
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, Incident, IncidentNote, JournalEntry, Notification
from orchestrator.incidents import events, lifecycle, status
from orchestrator.incidents.alerts import alerts_of

_INCIDENT_FIELDS = ("id", "component_name", "kind", "status", "resolution", "reason", "status_reason", "plan",
                    "blocked_by", "next_attempt_at", "last_error", "waiting_for", "waiting_until",
                    "opened_at", "updated_at", "resolved_at", "escalated_at", "acked_at", "acked_by",
                    "approved_at", "approved_by", "reopen_count", "resolved_by_step", "flap_episode", "source",
                    "escalation_tier")
_JOURNAL_FIELDS = ("step_index", "attempt", "strategy", "status", "executed", "owner", "claimed_at",
                   "finished_at", "description", "detail", "skip_reason", "output", "facts", "verification")


def incident_dict(incident: Incident, secrets: frozenset[str] = frozenset()) -> dict[str, Any]:
    """One incident's fields, redacted with ``secrets`` (its component's secret values)."""
    out = {k: getattr(incident, k) for k in _INCIDENT_FIELDS}
    out["component"] = out.pop("component_name")
    return redact_view(out, secrets)


class _Secrets:
    """Each component's secret values, read once per request."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._by_id: dict[int | None, frozenset[str]] = {None: frozenset()}

    def of(self, component_id: int | None) -> frozenset[str]:
        if component_id not in self._by_id:
            row = self.session.get(Component, component_id)
            self._by_id[component_id] = secret_values(row) if row is not None else frozenset()
        return self._by_id[component_id]


#: longest note accepted (a note is a sentence or a paragraph, not a log file)
MAX_NOTE_CHARS = 4000


def available_actions(incident: dict[str, Any]) -> list[str]:
    """What an operator may do to ``incident`` (an :func:`incident_dict`) now: ack, approve, resolve, note."""
    actions = []
    if incident["status"] != IncidentStatus.RESOLVED.value and incident["acked_at"] is None:
        actions.append("ack")
    if incident["status"] == IncidentStatus.AWAITING_APPROVAL.value:
        actions.append("approve")
    if incident["status"] != IncidentStatus.RESOLVED.value:
        actions.append("resolve")
    return [*actions, "note"]


def list_incidents(db: Database, *, component: str | None = None, status: str | None = None,
                   since_s: float | None = None, clock: Clock = SYSTEM_CLOCK, before: int | None = None,
                   limit: int | None = None) -> list[dict[str, Any]]:
    """Incidents newest first, filtered; ``before`` an id and ``limit`` page back through them."""
    if status is not None and status not in {s.value for s in IncidentStatus}:
        raise InputError(f"unknown status {status!r} (one of {', '.join(s.value for s in IncidentStatus)})",
                         field="--status")
    stmt = select(Incident).order_by(Incident.id.desc())
    if component is not None:
        stmt = stmt.where(Incident.component_name == component)
    if status is not None:
        stmt = stmt.where(Incident.status == status)
    if since_s is not None:
        stmt = stmt.where(Incident.opened_at >= clock.now() - timedelta(seconds=since_s))
    if before is not None:
        stmt = stmt.where(Incident.id < before)
    if limit is not None:
        stmt = stmt.limit(limit)
    with db.read() as session:
        secrets = _Secrets(session)
        return [incident_dict(i, secrets.of(i.component_id)) for i in session.scalars(stmt)]


def _get(session: Session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFoundError(f"no incident {incident_id}", field="ID")
    return incident


def show_incident(db: Database, incident_id: int) -> dict[str, Any]:
    """One incident with every journal row (step, attempt, output, verification), notification and note."""
    with db.read() as session:
        incident = _get(session, incident_id)
        secrets = _Secrets(session).of(incident.component_id)
        out = incident_dict(incident, secrets)
        rows = session.scalars(select(JournalEntry).where(JournalEntry.incident_id == incident_id)
                               .order_by(JournalEntry.step_index, JournalEntry.attempt))
        out["journal"] = [{k: getattr(r, k) for k in _JOURNAL_FIELDS} for r in rows]
        notes = session.scalars(select(Notification).where(Notification.incident_id == incident_id)
                                .order_by(Notification.id))
        out["notifications"] = [{"event": n.event, "channel": n.channel, "status": n.status, "title": n.title,
                                 "error": n.error, "created_at": n.created_at} for n in notes]
        written = session.scalars(select(IncidentNote).where(IncidentNote.incident_id == incident_id)
                                  .order_by(IncidentNote.id))
        out["notes"] = [{"at": n.at, "author": n.author, "text": n.text} for n in written]
        out["alerts"] = alerts_of(session, incident_id)
        out["events"] = [{"at": e.at, "kind": e.kind, "reason": e.reason} for e in events.timeline(session, incident_id)]
    return redact_view(out, secrets)


def _journal_dict(row: JournalEntry, component: str | None, secrets: frozenset[str]) -> dict[str, Any]:
    out = {"incident_id": row.incident_id, "component": component, **{k: getattr(row, k) for k in _JOURNAL_FIELDS}}
    return redact_view(out, secrets)


def recent_actions(db: Database, *, limit: int = 20) -> list[dict[str, Any]]:
    """The newest journal rows of every incident (each with its incident id and component), newest first."""
    stmt = (select(JournalEntry, Incident.component_name).join(Incident, Incident.id == JournalEntry.incident_id)
            .order_by(JournalEntry.id.desc()).limit(limit))
    with db.read() as session:
        secrets = _Secrets(session)
        return [_journal_dict(row, name, secrets.of(row.component_id)) for row, name in session.execute(stmt)]


def component_journal(db: Database, component: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest journal rows of one component's incidents, newest first."""
    stmt = (select(JournalEntry).join(Incident, Incident.id == JournalEntry.incident_id)
            .where(Incident.component_name == component).order_by(JournalEntry.id.desc()).limit(limit))
    with db.read() as session:
        secrets = _Secrets(session)
        return [_journal_dict(row, component, secrets.of(row.component_id)) for row in session.scalars(stmt)]


def _mark(db: Database, incident_id: int, action: str, actor: Actor, clock: Clock) -> dict[str, Any]:
    now: datetime = clock.now()
    with db.write() as session:
        incident = _get(session, incident_id)
        if action == "approve" and incident.status != IncidentStatus.AWAITING_APPROVAL.value:
            raise ConflictError(f"incident {incident_id} is {incident.status}, not awaiting_approval", field="ID")
        if action == "ack" and incident.acked_at is not None:
            raise ConflictError(f"incident {incident_id} was already acknowledged by {incident.acked_by}", field="ID")
        before = {"acked_at": incident.acked_at, "approved_at": incident.approved_at}
        if action == "ack":
            incident.acked_at, incident.acked_by = now, actor.os_user
            incident.updated_at = now
        elif not status.transition(session, incident_id, IncidentStatus.AWAITING_APPROVAL, IncidentStatus.OPEN,
                                   now=now, reason=f"approved by {actor.os_user}", approved_at=now,
                                   approved_by=actor.os_user, next_attempt_at=None):
            raise ConflictError(f"incident {incident_id} changed meanwhile; look again", field="ID")
        after = {"acked_at": incident.acked_at, "approved_at": incident.approved_at}
        audit.record(session, actor, action, f"incident:{incident_id}", _iso(before), _iso(after), clock)
        return incident_dict(incident)


def ack(db: Database, incident_id: int, *, actor: Actor | None = None, clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """Acknowledge: a human has seen it."""
    return _mark(db, incident_id, "ack", actor or Actor(), clock)


def approve(db: Database, incident_id: int, *, actor: Actor | None = None,
            clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """Approve the step the incident is waiting for: it goes back to ``open`` and the recovery loop
    picks it up at its next tick."""
    return _mark(db, incident_id, "approve", actor or Actor(), clock)


#: longest reason accepted for closing an incident by hand (one sentence for the timeline)
MAX_REASON_CHARS = 500


def resolve(db: Database, incident_id: int, reason: str, *, actor: Actor | None = None,
            clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """Close the incident by hand as ``manual`` (a person fixed it, or decided it needs nothing more),
    from whatever active status it is in, with ``reason`` in its timeline and an audit row. The
    recovery loop stops working on it (a run in flight sees it resolved at its next look and ends).
    InputError for an empty or overlong reason, NotFoundError for an unknown id, ConflictError when it
    is resolved already or moved meanwhile; nothing changes then."""
    reason = _text(reason, "a manual resolution needs a reason", "a reason", MAX_REASON_CHARS, "reason")
    actor = actor or Actor()
    now = clock.now()
    with db.write() as session:
        incident = _get(session, incident_id)
        if incident.status == IncidentStatus.RESOLVED.value:
            raise ConflictError(f"incident {incident_id} is already resolved ({incident.resolution})", field="ID")
        before = {"status": incident.status}
        if not lifecycle.resolve(session, incident, at=now, resolution=Resolution.MANUAL,
                                 reason=f"resolved by {actor.os_user}: {reason}"):
            raise ConflictError(f"incident {incident_id} changed meanwhile; look again", field="ID")
        session.refresh(incident)
        audit.record(session, actor, "resolve", f"incident:{incident_id}", before,
                     {"status": incident.status, "resolution": incident.resolution, "reason": reason}, clock)
        return incident_dict(incident, _Secrets(session).of(incident.component_id))


def note(db: Database, incident_id: int, text: str, *, actor: Actor | None = None,
         clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """Add a note to the incident's timeline; returns the note as ``show_incident`` lists it."""
    text = _text(text, "a note needs some text", "a note", MAX_NOTE_CHARS, "text")
    actor = actor or Actor()
    now = clock.now()
    with db.write() as session:
        incident = _get(session, incident_id)
        session.add(IncidentNote(incident_id=incident.id, at=now, author=actor.os_user, text=text))
        incident.updated_at = now
        audit.record(session, actor, "note", f"incident:{incident_id}", None, {"text": text}, clock)
    return {"at": now, "author": actor.os_user, "text": text}


def _text(value: str | None, missing: str, what: str, max_chars: int, field: str) -> str:
    """``value`` stripped; InputError naming ``field`` when it is empty or longer than ``max_chars``."""
    value = (value or "").strip()
    if not value:
        raise InputError(missing, field=field)
    if len(value) > max_chars:
        raise InputError(f"{what} is at most {max_chars} characters, got {len(value)}", field=field)
    return value


def _iso(values: dict[str, datetime | None]) -> dict[str, str | None]:
    return {k: v.isoformat() if v else None for k, v in values.items()}
