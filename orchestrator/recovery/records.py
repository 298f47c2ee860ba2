"""Durable effects of recovery on incidents and components: status moves, declared facts, the breaker.

Status moves go through :func:`orchestrator.incidents.status.transition` from the status just read:
when the health path or an operator moved the incident first, ours changes nothing and the caller
stops. Facts are written only where a strategy declared them (``Strategy.persists``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.components.targets import BACKUP, PRIMARY, effective_replicas, effective_vars
from orchestrator.core.states import IncidentStatus, Resolution
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, Incident
from orchestrator.incidents import lifecycle, status
from orchestrator.plans import Limits
from orchestrator.recovery.snapshot import breaker_for
from orchestrator.resilience.breaker import BreakerTransition

log = logging.getLogger("orchestrator.recovery")
S = IncidentStatus
_ESCALATES_FROM = {S.OPEN, S.RECOVERING, S.AWAITING_APPROVAL, S.BLOCKED}


def escalate(db: Database, incident_id: int, reason: str, now: datetime) -> Incident | None:
    """Stop automation for the incident and say why; the incident as escalated, or None if it was not
    in a status automation works on (resolved, or escalated already)."""
    with db.write() as session:
        incident = session.get(Incident, incident_id)
        if incident is None or S(incident.status) not in _ESCALATES_FROM:
            return None
        if not status.transition(session, incident_id, incident.status, S.ESCALATED, now=now, reason=reason,
                                 escalated_at=now):
            return None
        return incident


def block(db: Database, incident_id: int, *, reason: str, guard: str, blocked_by: str | None,
          blocked_by_id: int | None, now: datetime, seen: Mapping[str, Any] | None = None) -> bool:
    """Mark the incident blocked by a guard (re-evaluated when the cause clears); True if that is new
    (another guard or reason than the block it was already in)."""
    with db.write() as session:
        incident = session.get(Incident, incident_id)
        if incident is None or S(incident.status) not in (S.OPEN, S.RECOVERING, S.BLOCKED):
            return False
        details = dict(incident.details or {})
        same = (incident.status == S.BLOCKED.value and details.get("guard") == guard
                and incident.status_reason == reason)
        details.update(guard=guard, blocked_by_id=blocked_by_id, **(seen or {}))
        if same:  # no new block, but what it was judged on is new: wake it only when that changes again
            incident.details = details
            return False
        return status.transition(session, incident_id, incident.status, S.BLOCKED, now=now, reason=reason,
                                 blocked_by=blocked_by, details=details)


def resolve_verified(db: Database, incident_id: int, *, step_index: int | None, now: datetime,
                     resolution: Resolution, reason: str) -> Incident | None:
    """Close the incident after a passed check (``auto`` by ``step_index``, or ``self``); None if it
    was resolved meanwhile."""
    with db.write() as session:
        incident = session.get(Incident, incident_id)
        if incident is None or incident.status == S.RESOLVED.value:
            return None
        if not lifecycle.resolve(session, incident, at=now, resolution=resolution, step_index=step_index,
                                 reason=reason):
            return None
        return incident


def _field_value(field: str, value: Any) -> Any:
    """``value`` checked for the component field it goes to; ValueError if it does not fit."""
    if field == "active_target" and value in (PRIMARY, BACKUP):
        return str(value)
    if field == "replicas" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if field.startswith("vars.") and (value is None or isinstance(value, (str, int, float))):
        return None if value is None else str(value)
    raise ValueError(f"fact value {value!r} does not fit component field {field!r}")


def apply_facts(session: Session, component_id: int, persists: Mapping[str, str], facts: Mapping[str, Any],
                now: datetime) -> list[str]:
    """Write the facts a strategy declared in ``persists`` (fact → component field) to what the
    component learned (never to its declared definition: the one writer of ``active_target``,
    ``learned_replicas`` and ``learned_vars`` besides failback); the names of the fields whose effective
    value changed. A declared fact missing from ``facts`` changes nothing."""
    row = session.get(Component, component_id)
    if row is None:
        return []
    changed: list[str] = []
    learned_vars = dict(row.learned_vars or {})
    for fact, field in persists.items():
        if fact not in facts:
            continue
        value = _field_value(field, facts[fact])
        if field.startswith("vars."):
            name = field.removeprefix("vars.")
            if effective_vars(row).get(name) != value:
                changed.append(field)
            learned_vars[name] = value  # None hides the declared var: the strategy removed it
            row.learned_vars = dict(learned_vars)
        elif field == "replicas":
            if effective_replicas(row) != value:
                changed.append(field)
            row.learned_replicas = value
        elif row.active_target != value:
            row.active_target = value
            changed.append(field)
    if changed:
        row.generation += 1  # the running daemon reloads the definition (and the effective check)
        row.updated_at = now
    return changed


def record_breaker(db: Database, component_id: int, limits: Limits, *, succeeded: bool, now: datetime,
                   take_trial: bool = False) -> BreakerTransition | None:
    """Update the component's persisted breaker: a recovery succeeded or a plan was exhausted.
    ``take_trial`` instead grants the half-open trial (before acting after the open period)."""
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

