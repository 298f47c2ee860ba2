"""The mass-outage incident: one incident about the fleet while too much of it is DOWN at once.

When ``max_unhealthy_fraction`` or more of at least ``min_components`` components (and at least
``min_down`` of them) are DOWN, one
incident of kind ``mass_outage`` is opened and escalated (a human must look; every component's guard
refuses automatic action meanwhile), and resolved ``self`` when the fleet is healthy enough again.
The recovery loop calls :func:`check` every tick with the health plane's counts, which are cheap.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from orchestrator.core.clock import Clock
from orchestrator.core.states import ComponentState, IncidentKind, IncidentStatus, Resolution
from orchestrator.db.engine import Database
from orchestrator.db.models import Incident
from orchestrator.incidents import lifecycle, status
from orchestrator.plans import Limits
from orchestrator.recovery.guards import mass_outage
from orchestrator.recovery.health_view import HealthView

log = logging.getLogger("orchestrator.recovery")
S = IncidentStatus


def tripped(health: HealthView, limits: Limits) -> tuple[bool, int, int]:
    """(the blast-radius verdict, components DOWN, components in all) from the health plane's counts."""
    counts = health.counts()
    down, total = counts.get(ComponentState.DOWN, 0), sum(counts.values())
    return mass_outage(down, total, limits.max_unhealthy_fraction, limits.min_components, limits.min_down), down, total


def check(db: Database, health: HealthView, limits: Limits, clock: Clock, last: bool | None) -> bool:
    """Open or resolve the mass-outage incident for the fleet's current states; the verdict.
    ``last`` is the verdict of the previous call: the database is touched only when it may differ."""
    verdict, down, total = tripped(health, limits)
    if last is not None and verdict == last:
        return verdict
    now = clock.now()
    with db.write() as session:
        existing = session.scalar(select(Incident).where(
            Incident.kind == IncidentKind.MASS_OUTAGE.value, Incident.status != S.RESOLVED.value).limit(1))
        if verdict and existing is None:
            reason = (f"mass outage: {down} of {total} components down at once "
                      f"(at least {limits.max_unhealthy_fraction:.0%}); automatic recovery suspended")
            incident = status.create(session, component_id=None, component_name=None, at=now, reason=reason,
                                     kind=IncidentKind.MASS_OUTAGE)
            status.transition(session, incident.id, S.OPEN, S.ESCALATED, now=now, reason=reason, escalated_at=now)
            log.warning("incident=%s %s", incident.id, reason)
        elif not verdict and existing is not None:
            lifecycle.resolve(session, existing, at=now, resolution=Resolution.SELF,
                              reason=f"fleet healthy enough again: {down} of {total} components down")
            log.warning("incident=%s mass outage over: %d of %d components down", existing.id, down, total)
    return verdict
