"""Read queries shared by the CLI, reports and the web page."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.core.states import IncidentStatus
from orchestrator.db.models import Incident

#: every status but resolved, as a list: ``status IN (...)`` is served by ix_incidents_status, while
#: ``status != 'resolved'`` scans every incident ever recorded
UNRESOLVED_STATUSES = [s.value for s in IncidentStatus if s is not IncidentStatus.RESOLVED]


def open_incidents_by_component(session: Session) -> dict[int, int]:
    """component id → id of its newest unresolved incident (served by ix_incidents_status)."""
    stmt = (
        select(Incident.component_id, func.max(Incident.id))
        .where(Incident.status.in_(UNRESOLVED_STATUSES), Incident.component_id.is_not(None))
        .group_by(Incident.component_id)
    )
    return {cid: iid for cid, iid in session.execute(stmt) if cid is not None}  # none: the query says so
