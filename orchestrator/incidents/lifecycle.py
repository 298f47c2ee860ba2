"""Incident lifecycle: open (or reopen) on a component going unhealthy, resolve when it is healthy.

Called by the single writer (the recorder) inside its transaction, so an incident change commits
together with the transition that caused it; the status moves go through
:mod:`orchestrator.incidents.status`, which writes the incident_events rows the notifier and the
recovery loop read. Nothing is handed to anyone in memory.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from orchestrator.core.states import (
    ACTIVE_INCIDENT_STATUSES,
    AttemptStatus,
    ComponentState,
    IncidentKind,
    IncidentStatus,
    Resolution,
)
from orchestrator.db.models import Incident, JournalEntry, StateTransition
from orchestrator.incidents import status
from orchestrator.incidents.events import IncidentEvent

__all__ = ["DEFAULT_REOPEN_WINDOW_S", "IncidentEvent", "active_incident", "close_removed", "on_transition",
           "open_incident", "resolve"]

#: a component that fails again this soon after recovering, without having been UP in between,
#: reopens its last incident instead of opening a new one
DEFAULT_REOPEN_WINDOW_S = 300.0
#: later failure reasons kept in details["reasons"] of a reopened incident (the first stays in `reason`)
MAX_REASONS_KEPT = 20

#: states that open an incident; DEGRADED (slow or error-prone, still answering) is an early warning,
#: not one of them: UP <-> DEGRADED opens and closes nothing, DEGRADED -> DOWN opens one
_UNHEALTHY = {ComponentState.DOWN, ComponentState.FLAPPING}
_ACTIVE = [s.value for s in ACTIVE_INCIDENT_STATUSES]


def active_incident(session: Session, component_id: int) -> Incident | None:
    """The component's unresolved incident, if any."""
    return session.scalar(
        select(Incident)
        .where(Incident.component_id == component_id, Incident.status.in_(_ACTIVE))
        .order_by(Incident.id.desc())
        .limit(1)
    )


def on_transition(session: Session, *, component_id: int, component_name: str, from_state: ComponentState,
                  to_state: ComponentState, at: datetime, reason: str | None, flap_episode: int | None = None,
                  reopen_window_s: float = DEFAULT_REOPEN_WINDOW_S) -> IncidentEvent | None:
    """Open, reopen or resolve the component's incident for one state transition; what happened."""
    # into DOWN or FLAPPING, also from the other one: a run may have closed the incident while the
    # component was FLAPPING (healthy in a good phase), and FLAPPING -> DOWN must not leave it DOWN with
    # no incident (invariant 2); open_incident does nothing while one is active, and reopens a closed one
    # when the component never held UP since
    if to_state in _UNHEALTHY and to_state is not from_state:
        return open_incident(session, component_id=component_id, component_name=component_name, at=at,
                             reason=reason, flap_episode=flap_episode, reopen_window_s=reopen_window_s)
    if to_state is ComponentState.UP and from_state in _UNHEALTHY:
        incident = active_incident(session, component_id)
        if incident is None or incident.status == IncidentStatus.RECOVERING.value or _acting(session, incident.id):
            # nothing open, or an action is in flight (its run, or whoever takes over from a dead one,
            # verifies it and closes the incident, crediting the action if it did the work)
            return None
        # Only a run closes an incident as `auto`, after verifying its own action. A recovery seen here
        # came without one (none ran, none worked, or the plan was exhausted and escalated).
        why = f"recovered with no verified action: {reason}" if reason else "recovered with no verified action"
        if not resolve(session, incident, at=at, resolution=Resolution.SELF, reason=why):
            return None
        return IncidentEvent("resolved", incident.id, component_id, component_name, at, why, Resolution.SELF.value)
    return None


def _acting(session: Session, incident_id: int) -> bool:
    """True while a journal row of the incident is ``running`` (served by ix_recovery_journal_status)."""
    return bool(session.scalar(select(exists().where(JournalEntry.incident_id == incident_id,
                                                     JournalEntry.status == AttemptStatus.RUNNING.value))))


def open_incident(session: Session, *, component_id: int | None, component_name: str | None, at: datetime,
                  reason: str | None, flap_episode: int | None = None, kind: IncidentKind = IncidentKind.COMPONENT,
                  reopen_window_s: float = DEFAULT_REOPEN_WINDOW_S) -> IncidentEvent | None:
    """Open a new incident, or reopen the last one when the component never held UP since it closed.
    None when the component already has an active incident."""
    if component_id is not None:
        if active_incident(session, component_id) is not None:
            return None
        last = session.scalar(select(Incident).where(Incident.component_id == component_id)
                              .order_by(Incident.id.desc()).limit(1))
        if last is not None and _mergeable(session, last, component_id, at, reopen_window_s):
            return _reopen(session, last, at, reason, flap_episode)
    incident = status.create(session, component_id=component_id, component_name=component_name, at=at,
                             reason=reason, kind=kind, flap_episode=flap_episode)
    return IncidentEvent("opened", incident.id, component_id, component_name, at, reason)


def _mergeable(session: Session, last: Incident, component_id: int, at: datetime, window_s: float) -> bool:
    """A new failure continues ``last`` only if it closed within the window and the component never
    held UP for its success threshold since that incident's failure (no transition to UP after it
    opened: a verified recovery reports its passes to the health plane, so its UP comes even before
    the incident closes)."""
    if last.resolved_at is None or at - last.resolved_at > timedelta(seconds=window_s):
        return False
    held_up = session.scalar(select(exists().where(
        StateTransition.component_id == component_id, StateTransition.to_state == ComponentState.UP.value,
        StateTransition.at > last.opened_at)))
    return not held_up


def _reopen(session: Session, last: Incident, at: datetime, reason: str | None,
            flap_episode: int | None) -> IncidentEvent | None:
    details = dict(last.details or {})
    if reason:  # the first failure reason stays in `reason`; later ones are listed
        details["reasons"] = [*details.get("reasons", []), reason][-MAX_REASONS_KEPT:]
    if not status.transition(session, last.id, IncidentStatus.RESOLVED, IncidentStatus.OPEN, now=at, reason=reason,
                             resolution=None, resolved_at=None, resolved_by_step=None,
                             reopen_count=last.reopen_count + 1, flap_episode=flap_episode, details=details,
                             next_attempt_at=None, last_error=None):
        return None
    return IncidentEvent("reopened", last.id, last.component_id, last.component_name, at, reason)


def resolve(session: Session, incident: Incident, *, at: datetime, resolution: Resolution,
            step_index: int | None = None, reason: str | None = None) -> bool:
    """Close ``incident`` from the status it was read in; False if it moved meanwhile."""
    return status.transition(session, incident.id, incident.status, IncidentStatus.RESOLVED, now=at,
                             reason=reason, resolution=resolution.value, resolved_at=at,
                             resolved_by_step=step_index, blocked_by=None, next_attempt_at=None)


#: what a removed component's attempts in flight are journaled as (nothing can verify them any more)
REMOVED_MID_STEP = "the component was removed mid-step: its outcome was never verified"


def close_removed(session: Session, component_id: int, *, at: datetime, reason: str) -> list[int]:
    """In the removal's transaction: resolve the component's active incidents as ``removed`` (an
    incident about nothing would be counted open on the page and in /metrics forever) and settle
    their attempts still ``running`` as ``abandoned`` (no owner can verify them now); the ids closed."""
    closed = [i.id for i in session.scalars(select(Incident).where(Incident.component_id == component_id,
                                                                   Incident.status.in_(_ACTIVE)))
              if resolve(session, i, at=at, resolution=Resolution.REMOVED, reason=reason)]
    _abandon_running(session, closed, at)
    return closed


def _abandon_running(session: Session, closed: list[int], at: datetime) -> None:
    """Settle the attempts of ``closed`` still ``running`` as ``abandoned`` (no owner can verify them now)."""
    if closed:
        session.execute(update(JournalEntry)
                        .where(JournalEntry.incident_id.in_(closed), JournalEntry.status == AttemptStatus.RUNNING.value)
                        .values(status=AttemptStatus.ABANDONED.value, finished_at=at, detail=REMOVED_MID_STEP))


#: why an incident whose component row is gone is closed by the sweep below
ORPHANED = "its component is gone (removed while this incident was being opened)"


#: an active component incident whose component row is gone
_ORPHANED = (Incident.kind == IncidentKind.COMPONENT.value, Incident.component_id.is_(None), Incident.status.in_(_ACTIVE))


def any_orphaned(session: Session) -> bool:
    """Whether :func:`close_orphaned` has anything to close (a read: the sweep writes only then)."""
    return session.scalar(select(Incident.id).where(*_ORPHANED).limit(1)) is not None


def close_orphaned(session: Session, *, at: datetime) -> list[int]:
    """A safety net behind :func:`close_removed`: resolve as ``removed`` every active component incident
    whose component row is gone (the foreign key set it to NULL), so none stays open about nothing
    (invariant 2: never open without a reason). The removal closes its incidents in its own transaction;
    this catches one committed by a writer the removal could not see. The ids closed."""
    orphans = session.scalars(select(Incident).where(*_ORPHANED)).all()
    closed = [i.id for i in orphans if resolve(session, i, at=at, resolution=Resolution.REMOVED, reason=ORPHANED)]
    _abandon_running(session, closed, at)
    return closed
