"""Incident lifecycle: open (or reopen) on a component going unhealthy, resolve when it is healthy.

Called by the single writer (the recorder) inside its transaction, so an incident change commits
together with the transition that caused it. Returns an :class:`IncidentEvent` for listeners (the
recovery coordinator, notifications) to act on after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.core.states import (
    ACTIVE_INCIDENT_STATUSES,
    ComponentState,
    IncidentKind,
    IncidentStatus,
    Resolution,
)
from orchestrator.db.models import Incident

#: a component that fails again this soon after recovering reopens its last incident, not a new one
DEFAULT_REOPEN_WINDOW_S = 300.0

_UNHEALTHY = {ComponentState.DOWN, ComponentState.FLAPPING}
_ACTIVE = [s.value for s in ACTIVE_INCIDENT_STATUSES]


@dataclass(frozen=True)
class IncidentEvent:
    """Something happened to an incident: ``opened``, ``reopened``, ``resolved``, ``escalated``..."""

    kind: str
    incident_id: int
    component_id: int | None
    component_name: str | None
    at: datetime
    reason: str | None = None
    resolution: str | None = None


def active_incident(session: Session, component_id: int) -> Incident | None:
    return session.scalar(
        select(Incident)
        .where(Incident.component_id == component_id, Incident.status.in_(_ACTIVE))
        .order_by(Incident.id.desc())
        .limit(1)
    )


def on_transition(session: Session, *, component_id: int, component_name: str, from_state: ComponentState,
                  to_state: ComponentState, at: datetime, reason: str | None, flap_episode: int | None = None,
                  reopen_window_s: float = DEFAULT_REOPEN_WINDOW_S) -> IncidentEvent | None:
    """Open, reopen or resolve the component's incident for one state transition."""
    if to_state in _UNHEALTHY and from_state not in _UNHEALTHY:
        return open_incident(session, component_id=component_id, component_name=component_name, at=at,
                             reason=reason, flap_episode=flap_episode, reopen_window_s=reopen_window_s)
    if to_state is ComponentState.UP and from_state in _UNHEALTHY:
        incident = active_incident(session, component_id)
        if incident is None or incident.status == IncidentStatus.RECOVERING.value:
            return None  # nothing open, or the executor is verifying its action and will close it itself
        # Only the executor closes an incident as `auto`, after verifying its own step. A recovery seen
        # here came without a verified action (none ran, or the plan was exhausted and escalated).
        resolve(session, incident, at=at, resolution=Resolution.SELF)
        return IncidentEvent("resolved", incident.id, component_id, component_name, at, reason,
                             Resolution.SELF.value)
    return None


def open_incident(session: Session, *, component_id: int | None, component_name: str | None, at: datetime,
                  reason: str | None, flap_episode: int | None = None, kind: IncidentKind = IncidentKind.COMPONENT,
                  reopen_window_s: float = DEFAULT_REOPEN_WINDOW_S) -> IncidentEvent | None:
    if component_id is not None:
        if active_incident(session, component_id) is not None:
            return None
        last = session.scalar(select(Incident).where(Incident.component_id == component_id)
                              .order_by(Incident.id.desc()).limit(1))
        if last is not None and last.resolved_at is not None and at - last.resolved_at <= timedelta(
                seconds=reopen_window_s):
            last.status = IncidentStatus.OPEN.value
            last.resolution = None
            last.resolved_at = None
            last.resolved_by_step = None
            last.reopen_count += 1
            last.updated_at = at
            last.reason = reason
            last.flap_episode = flap_episode
            return IncidentEvent("reopened", last.id, component_id, component_name, at, reason)
    incident = Incident(component_id=component_id, component_name=component_name, kind=kind.value,
                        status=IncidentStatus.OPEN.value, reason=reason, opened_at=at, updated_at=at,
                        flap_episode=flap_episode)
    session.add(incident)
    session.flush()
    return IncidentEvent("opened", incident.id, component_id, component_name, at, reason)


def resolve(session: Session, incident: Incident, *, at: datetime, resolution: Resolution,
            step_index: int | None = None) -> None:
    incident.status = IncidentStatus.RESOLVED.value
    incident.resolution = resolution.value
    incident.resolved_at = at
    incident.updated_at = at
    incident.resolved_by_step = step_index
