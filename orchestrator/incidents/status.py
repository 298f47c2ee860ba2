"""The one owner of incident status: the table of legal moves and the one function that makes them.

Every writer of ``incidents.status`` — the lifecycle (open, reopen, resolve on recovery), the recovery
engine (recovering, approval, block, escalate, verified resolution, the mass-outage incident) and the
operator (approve) — calls :func:`transition`, and only :func:`create` inserts a row. A move is a
compare-and-set on the status the caller last saw (``UPDATE … WHERE id = :id AND status = :expected``):
exactly one row changes, or nothing does and the caller learns that someone else moved it first. A
pair missing from :data:`LEGAL_TRANSITIONS` is a bug and raises :class:`IllegalIncidentTransition`.
Each move writes its incident_events row in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from orchestrator.core.errors import IllegalIncidentTransition
from orchestrator.core.states import IncidentKind, IncidentStatus
from orchestrator.db.engine import rows_changed
from orchestrator.db.models import Incident
from orchestrator.incidents import events

S = IncidentStatus
_WORKED_ON = (S.OPEN, S.RECOVERING, S.AWAITING_APPROVAL, S.BLOCKED)
#: Every (from, to) pair :func:`transition` accepts.
LEGAL_TRANSITIONS: frozenset[tuple[S, S]] = frozenset(
    # an action is claimed; a step waits for a human; a guard objects; automation gives up
    {(s, S.RECOVERING) for s in (S.OPEN, S.AWAITING_APPROVAL, S.BLOCKED, S.ESCALATED)}
    | {(s, S.AWAITING_APPROVAL) for s in (S.OPEN, S.RECOVERING, S.BLOCKED, S.ESCALATED)}
    | {(s, S.BLOCKED) for s in (S.OPEN, S.RECOVERING, S.BLOCKED)}  # blocked → blocked: another guard
    | {(s, S.ESCALATED) for s in _WORKED_ON}
    # healthy again (verified, by itself, or closed by an operator)
    | {(s, S.RESOLVED) for s in (*_WORKED_ON, S.ESCALATED)}
    # back to waiting for work: the run stopped before a decision, an approval was given, it failed again
    | {(S.RECOVERING, S.OPEN), (S.AWAITING_APPROVAL, S.OPEN), (S.BLOCKED, S.OPEN), (S.RESOLVED, S.OPEN)}
)

#: The event kind of a move, when the move alone decides it.
_KINDS = {S.RECOVERING: "recovering", S.AWAITING_APPROVAL: "awaiting_approval", S.BLOCKED: "blocked",
          S.ESCALATED: "escalated", S.RESOLVED: "resolved"}
_KINDS_TO_OPEN = {S.RESOLVED: "reopened", S.AWAITING_APPROVAL: "approved", S.RECOVERING: "waiting",
                  S.BLOCKED: "unblocked"}


def kind_of(expected: S, to: S) -> str:
    """The incident_events kind a move writes."""
    return _KINDS_TO_OPEN[expected] if to is S.OPEN else _KINDS[to]


def transition(session: Session, incident_id: int, expected: S | str, to: S, *, now: datetime,
               reason: str | None = None, kind: str | None = None, **values: Any) -> bool:
    """Move the incident from ``expected`` to ``to``; True if this call moved it.

    ``reason`` becomes ``status_reason`` (why it is in its new status) and the event's reason;
    ``values`` are other columns set in the same UPDATE. False when the status was no longer
    ``expected`` (compare-and-set lost); IllegalIncidentTransition for a move the table does not list.
    """
    expected = S(expected)
    if (expected, to) not in LEGAL_TRANSITIONS:
        raise IllegalIncidentTransition(expected, to)
    stmt = (update(Incident)
            .where(Incident.id == incident_id, Incident.status == expected.value)
            .values(status=to.value, updated_at=now, status_reason=events.clip(reason), **values))
    if rows_changed(session.execute(stmt)) != 1:
        return False
    events.add(session, incident_id, kind or kind_of(expected, to), now, reason=reason,
               from_status=expected.value, to_status=to.value, resolution=values.get("resolution"))
    return True


def create(session: Session, *, component_id: int | None, component_name: str | None, at: datetime,
           reason: str | None, kind: IncidentKind = IncidentKind.COMPONENT,
           flap_episode: int | None = None) -> Incident:
    """Insert a new ``open`` incident (with its ``opened`` event); the row, flushed."""
    incident = Incident(component_id=component_id, component_name=component_name, kind=kind.value,
                        status=S.OPEN.value, reason=events.clip(reason), opened_at=at, updated_at=at,
                        flap_episode=flap_episode, details={})
    session.add(incident)
    session.flush()
    events.add(session, incident.id, "opened", at, reason=reason, to_status=S.OPEN.value)
    return incident
