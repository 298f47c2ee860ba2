"""How a run ends: resolved, escalated or blocked — the durable record of each and what is said about it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from orchestrator.core.check_result import CheckResult
from orchestrator.core.states import Resolution
from orchestrator.db.models import Component, Incident
from orchestrator.incidents import events
from orchestrator.recovery import records
from orchestrator.recovery.guards import Decision
from orchestrator.recovery.work import GONE, Engine, RunEnd, RunOutcome, RunRequest

log = logging.getLogger("orchestrator.recovery")


def resolved(engine: Engine, req: RunRequest, component_id: int, *, step_index: int | None,
             resolution: Resolution, reason: str, results: Sequence[CheckResult] = ()) -> RunEnd:
    """Close the incident after a passed check. ``auto`` only when ``step_index`` acted and verified;
    the passing ``results`` go to the health plane, so the component is UP at once (its DOWN backoff
    ends) instead of after its next scheduled checks."""
    now = engine.clock.now()
    incident = records.resolve_verified(engine.db, req.incident_id, step_index=step_index, now=now,
                                        resolution=resolution, reason=reason)
    if incident is None:
        return GONE
    if resolution is Resolution.AUTO:  # a recovery with no action proves nothing about the breaker
        records.record_breaker(engine.db, component_id, req.limits, succeeded=True, now=now)
    if results:
        engine.health.report_results(component_id, results)
    log.info("component=%s incident=%s step=%s resolved %s: %s", incident.component_name, req.incident_id,
             step_index, resolution.value, reason)
    engine.report(f"incident {req.incident_id} resolved ({resolution.value}): {reason}")
    return RunEnd(RunOutcome.RESOLVED)


def escalated(engine: Engine, req: RunRequest, component_id: int | None, reason: str,
              *, counts_against_breaker: bool = True) -> RunEnd:
    """Stop automation and tell a human; an exhausted plan counts as a failed recovery for the breaker."""
    now = engine.clock.now()
    incident = records.escalate(engine.db, req.incident_id, reason, now)
    if incident is None:
        return GONE
    component_id = component_id if component_id is not None else incident.component_id
    if counts_against_breaker and component_id is not None:
        records.record_breaker(engine.db, component_id, req.limits, succeeded=False, now=now)
    log.warning("component=%s incident=%s escalated: %s", incident.component_name, req.incident_id, reason)
    engine.report(f"incident {req.incident_id} escalated: {reason}")
    return RunEnd(RunOutcome.ESCALATED)


def stopped_by_guard(engine: Engine, req: RunRequest, decision: Decision, *, level: str | None = None) -> RunEnd:
    """A guard objected: escalate (breaker, budget) or block until its cause clears. ``level``: the
    degradation level the guards decided at."""
    if decision.escalates:
        return escalated(engine, req, None, decision.reason, counts_against_breaker=False)
    return blocked(engine, req.incident_id, guard=decision.guard, reason=decision.reason,
                   blocked_by=decision.blocked_by, until=decision.until, level=level)


def blocked(engine: Engine, incident_id: int, *, guard: str, reason: str, blocked_by: str | None = None,
            until: datetime | None = None, level: str | None = None) -> RunEnd:
    """Mark the incident blocked by ``guard``; the loop looks again when the cause clears (see
    orchestrator.recovery.worklist), so the component's state and flap episode now are kept with it,
    and at ``until`` at the latest (a guard's deadline, e.g. a held crash loop's escalation).
    ``level`` is the degradation level the block was decided at (read again when not given): a level
    read after the decision (an override lifted in between) would say the block's cause never was."""
    with engine.db.read() as session:
        incident = session.get(Incident, incident_id)
        blocked_by_id = None if blocked_by is None else session.scalar(
            select(Component.id).where(Component.name == blocked_by))
    component_id = incident.component_id if incident is not None else None
    seen = {} if component_id is None else {"blocked_state": engine.health.state(component_id).value,
                                            "blocked_episode": engine.health.flap_episode(component_id),
                                            "blocked_level": level or str(engine.degradation())}
    if records.block(engine.db, incident_id, reason=reason, guard=guard, blocked_by=blocked_by,
                     blocked_by_id=blocked_by_id, now=engine.clock.now(), seen=seen):
        log.warning("incident=%s blocked by %s: %s", incident_id, guard, reason)
        engine.report(f"incident {incident_id} blocked: {reason}")
    return RunEnd(RunOutcome.BLOCKED, until, reason=reason if reason.startswith(guard) else f"{guard}: {reason}")


def step_failed(engine: Engine, req: RunRequest, tag: str, detail: str) -> None:
    """A durable ``step_failed`` event (it changes no status) for the notifier."""
    with engine.db.write() as session:
        events.record(session, req.incident_id, "step_failed", engine.clock.now(), f"{tag}: {detail}")
