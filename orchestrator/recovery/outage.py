"""Fleet-level decisions of the coordinator: the mass-outage incident, and what a change unblocks.

When more than ``max_unhealthy_fraction`` of at least ``min_components`` components are DOWN at once,
one incident of kind ``mass_outage`` is opened (escalated: a human must look; every component's guard
refuses automatic action meanwhile) and resolved when the fleet is healthy enough again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from orchestrator.core.states import ComponentState, IncidentKind, IncidentStatus, Resolution
from orchestrator.db.models import Component, Incident
from orchestrator.incidents.lifecycle import IncidentEvent, open_incident, resolve
from orchestrator.recovery.guards import mass_outage

if TYPE_CHECKING:
    from orchestrator.recovery.coordinator import RecoveryCoordinator

log = logging.getLogger("orchestrator.recovery")
S = IncidentStatus
#: Guards whose block ends when the component itself goes DOWN again (a new, stable failure).
_RETRY_ON_DOWN = ("flapping", "hold")


def check(coord: RecoveryCoordinator) -> bool:
    """Open or resolve the mass-outage incident for the fleet's current states; True if one was just
    resolved (so incidents blocked by it are re-evaluated)."""
    states = coord.health.states()
    limits = coord.limits
    down = sum(1 for s in states.values() if s is ComponentState.DOWN)
    tripped = mass_outage(down, len(states), limits.max_unhealthy_fraction, limits.min_components)
    # Called on every transition (thousands at start-up): touch the database only when the verdict may
    # differ from the last one seen, never for a fleet that stays healthy.
    if coord.outage_open is not None and tripped == coord.outage_open:
        return False
    now = coord.clock.now()
    event: IncidentEvent | None = None
    with coord.db.write() as session:
        existing = session.scalar(select(Incident).where(
            Incident.kind == IncidentKind.MASS_OUTAGE.value, Incident.status != S.RESOLVED.value).limit(1))
        if tripped and existing is None:
            reason = (f"mass outage: {down} of {len(states)} components down at once "
                      f"(more than {limits.max_unhealthy_fraction:.0%}); automatic recovery suspended")
            event = open_incident(session, component_id=None, component_name=None, at=now, reason=reason,
                                  kind=IncidentKind.MASS_OUTAGE)
            incident = session.get(Incident, event.incident_id)
            incident.status, incident.escalated_at = S.ESCALATED.value, now
        elif not tripped and existing is not None:
            resolve(session, existing, at=now, resolution=Resolution.SELF)
            event = IncidentEvent("resolved", existing.id, None, None, now, existing.reason, Resolution.SELF.value)
    coord.outage_open = tripped
    if event is not None:
        log.warning("incident=%s mass outage %s: %s", event.incident_id, event.kind, event.reason)
        coord._emit(event)
    return event is not None and event.kind == "resolved"


def to_reevaluate(coord: RecoveryCoordinator, component_id: int, state: ComponentState, cleared: bool) -> list[int]:
    """Blocked incidents that this state change (or the end of a mass outage) may unblock."""
    reliable = coord.health.view_reliable()
    with coord.db.read() as session:
        name = session.scalar(select(Component.name).where(Component.id == component_id))
        blocked = session.scalars(select(Incident).where(Incident.status == S.BLOCKED.value,
                                                         Incident.component_id.is_not(None))).all()
    out = []
    for incident in blocked:
        guard = (incident.details or {}).get("guard")
        if (state is ComponentState.UP and name is not None and incident.blocked_by == name
                or cleared and guard == "blast_radius"
                or reliable and guard == "sentinels"
                or incident.component_id == component_id and state is ComponentState.DOWN and guard in _RETRY_ON_DOWN):
            out.append(incident.id)
    return out
