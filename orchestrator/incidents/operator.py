"""What operators do with incidents (list, show, ack, approve): the service layer behind the CLI.

Returns plain dicts (the stable JSON shapes ``--json`` prints); every mutation writes an audit row in
its own transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import ConflictError, InputError, NotFoundError
from orchestrator.core.states import IncidentStatus
from orchestrator.db import audit
from orchestrator.db.audit import Actor
from orchestrator.db.engine import Database
from orchestrator.db.models import Incident, JournalEntry, Notification
from orchestrator.incidents import status

_INCIDENT_FIELDS = ("id", "component_name", "kind", "status", "resolution", "reason", "status_reason", "plan",
                    "blocked_by", "next_attempt_at", "last_error",
                    "opened_at", "updated_at", "resolved_at", "escalated_at", "acked_at", "acked_by",
                    "approved_at", "approved_by", "reopen_count", "resolved_by_step", "flap_episode")
_JOURNAL_FIELDS = ("step_index", "attempt", "strategy", "status", "executed", "owner", "claimed_at",
                   "finished_at", "description", "detail", "skip_reason", "output", "facts", "verification")


def incident_dict(incident: Incident) -> dict[str, Any]:
    out = {k: getattr(incident, k) for k in _INCIDENT_FIELDS}
    out["component"] = out.pop("component_name")
    return out


def list_incidents(db: Database, *, component: str | None = None, status: str | None = None,
                   since_s: float | None = None, clock: Clock = SYSTEM_CLOCK) -> list[dict[str, Any]]:
    """Incidents newest first, filtered."""
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
    with db.read() as session:
        return [incident_dict(i) for i in session.scalars(stmt)]


def _get(session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFoundError(f"no incident {incident_id}", field="ID")
    return incident


def show_incident(db: Database, incident_id: int) -> dict[str, Any]:
    """One incident with every journal row (step, attempt, output, verification) and notification."""
    with db.read() as session:
        out = incident_dict(_get(session, incident_id))
        rows = session.scalars(select(JournalEntry).where(JournalEntry.incident_id == incident_id)
                               .order_by(JournalEntry.step_index, JournalEntry.attempt))
        out["journal"] = [{k: getattr(r, k) for k in _JOURNAL_FIELDS} for r in rows]
        notes = session.scalars(select(Notification).where(Notification.incident_id == incident_id)
                                .order_by(Notification.id))
        out["notifications"] = [{"event": n.event, "channel": n.channel, "status": n.status, "title": n.title,
                                 "error": n.error, "created_at": n.created_at} for n in notes]
    return out


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


def _iso(values: dict[str, datetime | None]) -> dict[str, str | None]:
    return {k: v.isoformat() if v else None for k, v in values.items()}
