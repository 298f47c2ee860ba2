"""Waiting for a human's yes before a step: ``orchestrator incidents approve ID``.

The request time is stored in the incident's details, so a restarted daemon keeps waiting for the
same request (and the same timeout) instead of asking again. An approval counts only if it was given
after the request. The wait polls the database; its timeout is on the injected clock (wall time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from orchestrator.core.clock import Clock
from orchestrator.core.states import IncidentStatus as S
from orchestrator.db.engine import Database
from orchestrator.db.models import Incident
from orchestrator.incidents.lifecycle import IncidentEvent
from orchestrator.plans import Approval
from orchestrator.recovery.records import set_status

#: How often the database is polled for the approval.
DEFAULT_POLL_S = 1.0


class ApprovalOutcome(StrEnum):
    APPROVED = "approved"
    PROCEED = "proceed"  # timed out, and the step says to proceed anyway
    ESCALATE = "escalate"  # timed out
    GONE = "gone"  # the incident was resolved (or changed by someone else) meanwhile
    STOPPED = "stopped"  # shutdown


def await_approval(db: Database, incident_id: int, key: str, approval: Approval, *, clock: Clock,
                   stop: threading.Event, emit: Callable[[IncidentEvent], None],
                   poll_s: float = DEFAULT_POLL_S) -> ApprovalOutcome:
    """1. If ``key`` (run:step) was approved already, return at once.
    2. Otherwise record the request (once) and set the incident ``awaiting_approval``.
    3. Poll until approved after the request, the incident is resolved, the timeout, or shutdown."""
    now = clock.now()
    with db.write() as session:
        incident = session.get(Incident, incident_id)
        if incident is None or incident.status == S.RESOLVED.value:
            return ApprovalOutcome.GONE
        details = dict(incident.details or {})
        if key in details.get("approved", []):
            return ApprovalOutcome.APPROVED
        requests = dict(details.get("approval_requested", {}))
        if key not in requests:
            requests[key] = now.isoformat()
            incident.details = {**details, "approval_requested": requests}
            session.flush()
            set_status(session, incident_id, S.AWAITING_APPROVAL, now=now, approved_at=None, approved_by=None,
                       allowed_from=(S.OPEN, S.RECOVERING, S.BLOCKED, S.ESCALATED))
            emit(IncidentEvent("awaiting_approval", incident_id, incident.component_id, incident.component_name,
                               now, f"step needs approval: orchestrator incidents approve {incident_id}"))
        requested_at = datetime.fromisoformat(requests[key])
    give_up_at = requested_at + timedelta(seconds=approval.timeout_s)
    while not stop.is_set():
        with db.read() as session:
            incident = session.get(Incident, incident_id)
        if incident is None or incident.status == S.RESOLVED.value:
            return ApprovalOutcome.GONE
        if incident.approved_at is not None and incident.approved_at >= requested_at:
            _mark_approved(db, incident_id, key, clock.now())
            return ApprovalOutcome.APPROVED
        if clock.now() >= give_up_at:
            return ApprovalOutcome.PROCEED if approval.on_timeout == "proceed" else ApprovalOutcome.ESCALATE
        stop.wait(poll_s)
    return ApprovalOutcome.STOPPED


def _mark_approved(db: Database, incident_id: int, key: str, now: datetime) -> None:
    with db.write() as session:
        incident = session.get(Incident, incident_id)
        details = dict(incident.details or {})
        incident.details = {**details, "approved": [*details.get("approved", []), key]}
        session.flush()
        set_status(session, incident_id, S.RECOVERING, now=now, allowed_from=(S.AWAITING_APPROVAL,))
