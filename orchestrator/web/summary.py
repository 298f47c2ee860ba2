"""The fleet at a glance (``/api/v1/status``, the page's header, ``/healthz``): counts and the daemon's health."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.components.views import instance_views, state_counts
from orchestrator.db.models import Incident
from orchestrator.incidents.queries import UNRESOLVED_STATUSES
from orchestrator.web.source import STUCK_AFTER_HEARTBEATS, LiveFacts, WebSource


def open_incident_counts(session: Session) -> dict[str, int]:
    """Every unresolved status → how many incidents are in it (served by ix_incidents_status)."""
    counts = dict.fromkeys(UNRESOLVED_STATUSES, 0)
    stmt = select(Incident.status, func.count()).where(Incident.status.in_(UNRESOLVED_STATUSES)).group_by(Incident.status)
    for status, n in session.execute(stmt):
        counts[status] = n
    return counts


def daemon_dict(facts: LiveFacts) -> dict[str, Any]:
    """The daemon's health as the API and page show it."""
    return {"mode": facts.mode, "daemons_alive": facts.daemons_alive, "scheduler_running": facts.scheduler_running,
            "scheduler_stalled_s": None if facts.scheduler_stalled_s is None else round(facts.scheduler_stalled_s, 3),
            "view_reliable": facts.view_reliable, "dropped_results": facts.dropped_results,
            "db_writes_healthy": facts.db_writes_healthy, "skipped_runs": facts.skipped_runs,
            "db_writes_failing_s": None if facts.db_writes_failing_s is None else round(facts.db_writes_failing_s, 1),
            "drops": {name: n for name, n in facts.drops.items() if n},
            "lateness_p99_ms": lateness_p99_ms(facts)}


def lateness_p99_ms(facts: LiveFacts) -> float | None:
    """Upper bound of the bucket holding the 99th percentile of check lateness (daemon only)."""
    if facts.stats is None or facts.stats.check_lateness_s.n == 0:
        return None
    hist = facts.stats.check_lateness_s
    wanted = 0.99 * hist.n
    for bound, running in hist.cumulative():
        if running >= wanted:
            return None if bound == "+Inf" else float(bound) * 1000.0
    return None


def status_summary(source: WebSource) -> dict[str, Any]:
    """``/api/v1/status``: components by state, open incidents by status, live daemons, daemon health."""
    now = source.clock.now()
    facts = source.facts()
    with source.db.read() as session:
        by_state = state_counts(session, now)
        incidents = open_incident_counts(session)
        instances = [i for i in instance_views(session, now) if i["alive"]]
    return {"generated_at": now, "components": {"total": sum(by_state.values()), "by_state": by_state},
            "incidents": {"open": sum(incidents.values()), "by_status": incidents},
            "instances": instances, "daemon": daemon_dict(facts)}


def scheduler_stuck(facts: LiveFacts, heartbeat_interval_s: float) -> bool:
    """True when the daemon's scheduler stopped running its jobs (its heartbeat job is overdue)."""
    stalled = facts.scheduler_stalled_s
    return stalled is not None and stalled > STUCK_AFTER_HEARTBEATS * heartbeat_interval_s
