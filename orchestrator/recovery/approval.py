"""Waiting for a human's yes before a step: ``orchestrator incidents approve ID``.

Nothing waits in a thread. The first time a run reaches a step that needs approval, the request time
is stored in the incident's details and the incident becomes ``awaiting_approval`` with its
``next_attempt_at`` at the timeout; the run's claim ends. The approval (``operator.approve``) moves the
incident back to ``open``, so the recovery loop picks it up at its next tick, and so does the timeout.
An approval counts only if it was given after the request; a restarted daemon keeps the same request
and the same timeout. Times are on the injected clock; whether the timeout passed is asked of
``passed`` (the recovery loop answers on the monotonic clock for a wait it wrote, invariant 7).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from orchestrator.core.states import IncidentStatus as S
from orchestrator.db.engine import Database
from orchestrator.db.models import Incident
from orchestrator.incidents import status
from orchestrator.plans import Approval


class ApprovalOutcome(StrEnum):
    APPROVED = "approved"
    PROCEED = "proceed"  # timed out, and the step says to proceed anyway
    ESCALATE = "escalate"  # timed out
    PENDING = "pending"  # asked (now or before): come back at ``give_up_at`` or when approved
    GONE = "gone"  # the incident was resolved (or moved by someone else) meanwhile


@dataclass(frozen=True)
class ApprovalState:
    outcome: ApprovalOutcome
    give_up_at: datetime | None = None


def check(db: Database, incident_id: int, key: str, approval: Approval, *, now: datetime,
          passed: Callable[[datetime], bool] | None = None) -> ApprovalState:
    """1. ``key`` (run:step) approved before, or approved since it was asked → APPROVED.
    2. Never asked → ask: record the request, move the incident to ``awaiting_approval`` → PENDING.
    3. Asked and the timeout passed → PROCEED or ESCALATE (the step's ``on_timeout``); else PENDING."""
    with db.write() as session:
        incident = session.get(Incident, incident_id)
        if incident is None or incident.status == S.RESOLVED.value:
            return ApprovalState(ApprovalOutcome.GONE)
        details = dict(incident.details or {})
        if key in details.get("approved", []):
            return ApprovalState(ApprovalOutcome.APPROVED)
        requests = dict(details.get("approval_requested", {}))
        if key not in requests:
            return _ask(session, incident, key, approval, now)
        requested_at = datetime.fromisoformat(requests[key])
        give_up_at = requested_at + timedelta(seconds=approval.timeout_s)
        if incident.approved_at is not None and incident.approved_at >= requested_at:
            incident.details = {**details, "approved": [*details.get("approved", []), key]}
            return ApprovalState(ApprovalOutcome.APPROVED)
        if not (passed(give_up_at) if passed is not None else now >= give_up_at):
            return ApprovalState(ApprovalOutcome.PENDING, give_up_at)
        if approval.on_timeout == "proceed":
            incident.details = {**details, "approved": [*details.get("approved", []), key]}
            return ApprovalState(ApprovalOutcome.PROCEED)
        return ApprovalState(ApprovalOutcome.ESCALATE)


def _ask(session: Session, incident: Incident, key: str, approval: Approval, now: datetime) -> ApprovalState:
    details = dict(incident.details or {})
    incident.details = {**details, "approval_requested": {**details.get("approval_requested", {}),
                                                          key: now.isoformat()}}
    session.flush()
    give_up_at = now + timedelta(seconds=approval.timeout_s)
    if incident.status != S.AWAITING_APPROVAL.value and not status.transition(
            session, incident.id, incident.status, S.AWAITING_APPROVAL, now=now, approved_at=None,
            approved_by=None, reason=f"step needs approval: orchestrator incidents approve {incident.id}"):
        return ApprovalState(ApprovalOutcome.GONE)
    return ApprovalState(ApprovalOutcome.PENDING, give_up_at)
