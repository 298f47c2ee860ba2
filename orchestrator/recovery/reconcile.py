"""Crash safety: settle journal rows left ``running`` by a process that died mid-step.

A dead owner's attempt may or may not have done its side effect, so it is never blindly run again.
Instead the component is verified: healthy → the attempt is marked ``succeeded`` ("succeeded after
restart") and the incident resolved by that step; otherwise ``failed`` ("interrupted"). The plan then
resumes; an interrupted step is repeated only if its strategy declares itself idempotent.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import select

from orchestrator.core.clock import Clock
from orchestrator.core.states import AttemptStatus, Resolution
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, DaemonInstance, Incident, JournalEntry
from orchestrator.plans import PlanSet, Verify
from orchestrator.recovery import journal, records
from orchestrator.recovery.health_view import HEARTBEAT_STALE_S
from orchestrator.recovery.targets import effective_check
from orchestrator.recovery.verify import check_probe, verify_until

log = logging.getLogger("orchestrator.recovery")


def dead_running_rows(db: Database, owner: str, now: datetime) -> dict[int, list[JournalEntry]]:
    """Running rows by incident whose owner is not alive. On SQLite only one daemon can run (a lock
    refuses a second), so every other owner is dead; on PostgreSQL an owner is alive while another
    instance's heartbeat is fresh."""
    alive = {owner}
    with db.read() as session:
        if not db.is_sqlite:
            fresh_after = now - timedelta(seconds=HEARTBEAT_STALE_S)
            alive |= set(session.scalars(select(DaemonInstance.id).where(
                DaemonInstance.stopped_at.is_(None), DaemonInstance.heartbeat_at > fresh_after)))
        rows = journal.running_rows(session, alive)
    by_incident: dict[int, list[JournalEntry]] = {}
    for row in rows:
        by_incident.setdefault(row.incident_id, []).append(row)
    return by_incident


def _verify_settings(plans: PlanSet | None, plan_name: str | None, step_index: int) -> Verify:
    if plans is not None and plan_name in plans.plans and step_index < len(plans.plans[plan_name].steps):
        return plans.plans[plan_name].steps[step_index].verify
    return Verify()


def reconcile_incident(db: Database, rows: list[JournalEntry], plans: PlanSet | None, *, clock: Clock,
                       stop: threading.Event) -> bool:
    """Settle one incident's dead running rows; True if the component verified healthy (resolved)."""
    with db.read() as session:
        incident = session.get(Incident, rows[0].incident_id)
        row = session.get(Component, incident.component_id) if incident and incident.component_id else None
        spec = effective_check(row) if row is not None else None
        timeout_s = row.timeout_s if row is not None else 2.0
    last = max(rows, key=lambda r: (r.step_index, r.attempt))
    settings = _verify_settings(plans, incident.plan if incident else None, last.step_index)
    outcome = verify_until(check_probe(spec), settings, mode="check", stop=stop, probe_timeout_s=timeout_s) \
        if spec is not None else None
    healthy = bool(outcome and outcome.passed)
    record = {**(outcome.as_record() if outcome else {}), "reconciled": True, "interrupted": not healthy}
    for entry in rows:
        status = AttemptStatus.SUCCEEDED if healthy and entry is last else AttemptStatus.FAILED
        detail = "succeeded after restart" if status is AttemptStatus.SUCCEEDED else \
            "interrupted: the owner died mid-step and the component was not verified healthy"
        journal.finish(db, entry.id, status=status, now=clock.now(), detail=detail, verification=record)
        log.warning("component=%s incident=%s step=%s attempt=%s reconciled: %s", row.name if row else "-",
                    entry.incident_id, entry.step_index, entry.attempt, detail)
    if healthy and incident is not None:
        records.resolve_verified(db, incident.id, step_index=last.step_index, now=clock.now(),
                                 resolution=Resolution.AUTO)
    return healthy
