"""Durable effects of recovery on incidents and components: status changes, facts, the breaker.

Every status change is a compare-and-set (``UPDATE … WHERE status IN (…)``): when the health path or
an operator changed the incident first, ours changes nothing and the caller stops.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from orchestrator.core.states import IncidentStatus, Resolution
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, Incident
from orchestrator.incidents.lifecycle import IncidentEvent, resolve
from orchestrator.plans import Limits
from orchestrator.recovery.snapshot import breaker_for
from orchestrator.recovery.targets import BACKUP, PRIMARY
from orchestrator.resilience.breaker import BreakerTransition

log = logging.getLogger("orchestrator.recovery")
S = IncidentStatus
#: Statuses an incident still worked on (or waiting for a human) may move out of.
UNRESOLVED = (S.OPEN, S.RECOVERING, S.AWAITING_APPROVAL, S.BLOCKED, S.ESCALATED)


def set_status(session: Session, incident_id: int, to: IncidentStatus, *, now: datetime,
               allowed_from: Iterable[IncidentStatus] = UNRESOLVED, **values: Any) -> bool:
    """Move the incident to ``to`` if its status is one of ``allowed_from``; True if it moved."""
    stmt = (update(Incident)
            .where(Incident.id == incident_id, Incident.status.in_([s.value for s in allowed_from]))
            .values(status=to.value, updated_at=now, **values)
            .execution_options(synchronize_session=False))
    return session.execute(stmt).rowcount == 1


def _event(kind: str, incident: Incident, now: datetime, reason: str | None,
           resolution: str | None = None) -> IncidentEvent:
    return IncidentEvent(kind, incident.id, incident.component_id, incident.component_name, now, reason, resolution)


def escalate(db: Database, incident_id: int, reason: str, now: datetime) -> IncidentEvent | None:
    """Stop automation for the incident and say why; the event is for the notifier."""
    with db.write() as session:
        if not set_status(session, incident_id, S.ESCALATED, now=now, escalated_at=now, reason=reason,
                          allowed_from=(S.OPEN, S.RECOVERING, S.AWAITING_APPROVAL, S.BLOCKED)):
            return None
        incident = session.get(Incident, incident_id)
        return _event("escalated", incident, now, reason)


def block(db: Database, incident_id: int, *, reason: str, guard: str, blocked_by: str | None,
          now: datetime) -> IncidentEvent | None:
    """Mark the incident blocked by a guard (re-evaluated later)."""
    with db.write() as session:
        incident = session.get(Incident, incident_id)
        if incident is None or incident.status not in (S.OPEN, S.RECOVERING, S.BLOCKED):
            return None
        changed = incident.status != S.BLOCKED.value or incident.blocked_by != blocked_by
        incident.status, incident.blocked_by, incident.reason, incident.updated_at = (
            S.BLOCKED.value, blocked_by, reason, now)
        incident.details = {**(incident.details or {}), "guard": guard}
        return _event("blocked", incident, now, reason) if changed else None


def resolve_verified(db: Database, incident_id: int, *, step_index: int | None, now: datetime,
                     resolution: Resolution = Resolution.AUTO) -> IncidentEvent | None:
    """Close the incident after a passed verification (``auto`` by ``step_index``)."""
    with db.write() as session:
        incident = session.get(Incident, incident_id)
        if incident is None or incident.status == S.RESOLVED.value:
            return None
        resolve(session, incident, at=now, resolution=resolution, step_index=step_index)
        incident.blocked_by = None
        return _event("resolved", incident, now, incident.reason, resolution.value)


def apply_facts(session: Session, component_id: int, facts: Mapping[str, Any], now: datetime) -> list[str]:
    """Persist what a strategy changed about the component; return the names of the columns changed.

    failover ``active_target`` → active_target (the check then probes backup_url); scale ``to_replicas``
    → replicas; rollback ``to_version`` → vars.current_version."""
    row = session.get(Component, component_id)
    if row is None:
        return []
    changed: list[str] = []
    if facts.get("active_target") in (PRIMARY, BACKUP) and row.active_target != facts["active_target"]:
        row.active_target = str(facts["active_target"])
        changed.append("active_target")
    if isinstance(facts.get("to_replicas"), int) and row.replicas != facts["to_replicas"]:
        row.replicas = int(facts["to_replicas"])
        changed.append("replicas")
    if facts.get("to_version"):
        new_vars = {**(row.vars or {}), "current_version": str(facts["to_version"])}
        if new_vars.get("previous_version") == new_vars["current_version"]:
            del new_vars["previous_version"]  # rolled back to it: it is no longer "previous"
        row.vars = new_vars
        changed.append("vars")
    if changed:
        row.generation += 1  # the running daemon reloads the definition (and the effective check)
        row.updated_at = now
    return changed


def record_breaker(db: Database, component_id: int, limits: Limits, *, succeeded: bool, now: datetime,
                   take_trial: bool = False) -> BreakerTransition | None:
    """Update the component's persisted breaker: a recovery succeeded or a plan was exhausted.
    ``take_trial`` instead grants the half-open trial (at the start of a run after the open period)."""
    with db.write() as session:
        row = session.get(Component, component_id)
        if row is None:
            return None
        breaker = breaker_for(row, limits)
        if take_trial:
            transition = breaker.check(now).transition
        elif succeeded:
            transition = breaker.record_success(now)
        else:
            transition = breaker.record_failure(now)
        row.breaker = breaker.to_dict()
        if transition is not None:
            log.warning("component=%s breaker %s -> %s: %s", row.name, transition.from_state.value,
                        transition.to_state.value, transition.reason)
        return transition
