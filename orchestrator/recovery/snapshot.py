"""Build the guards' input for one component from the database and the live health view.

The fleet-wide figures come from ``HealthView.counts()`` (kept by the health plane as states change),
and the dependency walk asks only about the component's own dependencies: a decision costs the same
in a fleet of 20 and of 10,000.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.core.states import ComponentState
from orchestrator.db.models import Component, ComponentDependency, Incident, JournalEntry
from orchestrator.plans import CrashLoop, Limits, Plan
from orchestrator.recovery import journal
from orchestrator.recovery.guards import GuardInput
from orchestrator.recovery.health_view import HealthView
from orchestrator.recovery.retry import PastIncident
from orchestrator.resilience.breaker import BreakerConfig, CircuitBreaker
from orchestrator.resilience.budget import RecoveryBudget

#: Earlier incidents read for the crash-loop streak (its delay is capped long before this many).
HISTORY_LIMIT = 20


def breaker_for(row: Component, limits: Limits) -> CircuitBreaker:
    """The component's persisted recovery breaker, configured from ``limits.breaker``."""
    cfg = limits.breaker
    config = BreakerConfig(cfg.threshold, cfg.open_base_s, max(cfg.open_cap_s, cfg.open_base_s))
    try:
        return CircuitBreaker.from_dict(dict(row.breaker or {}), config)
    except (ValueError, TypeError):
        return CircuitBreaker(config)  # unreadable state must not stop recovery: start closed


def hold_of(row: Component, now: datetime) -> str | None:
    """Why the operator holds the component, or None."""
    hold = row.hold_at(now)
    if ComponentState.PAUSED.value in (hold, row.state):
        return f"paused{f': {row.paused_reason}' if row.paused_reason else ''}"
    if ComponentState.MAINTENANCE.value in (hold, row.state):
        # a maintenance window says which one in the reason the judge gave ("maintenance: window 3 until …")
        window = hold is None and (row.state_reason or "").startswith("maintenance: window ")
        return f"in {row.state_reason}" if window else "in maintenance"
    return None


def down_roots(session: Session, component_id: int, health: HealthView) -> tuple[tuple[str, int], ...]:
    """(name, id) of DOWN dependencies (direct or transitive) that have no DOWN dependency themselves:
    the real causes. A DOWN dependency whose own dependency is DOWN is blocked too, so the action
    goes only to the deepest one."""
    roots: set[int] = set()
    seen: set[int] = set()
    stack = [component_id]
    while stack:
        node = stack.pop()
        deps = list(session.scalars(select(ComponentDependency.depends_on_id)
                                    .where(ComponentDependency.component_id == node)))
        down = [d for d in deps if health.state(d) is ComponentState.DOWN]
        if node != component_id and not down:
            roots.add(node)
        stack.extend(d for d in down if d not in seen)
        seen.update(down)
    if not roots:
        return ()
    names = session.execute(select(Component.name, Component.id).where(Component.id.in_(roots))).all()
    return tuple(sorted((name, cid) for name, cid in names))


#: ``incidents.details`` key set when an operator opened (or reopened) an incident with ``orchestrator
#: recover``: the ``reopen_count`` of that opening
MANUAL_KEY = "manual_opening"


def opened_manually(details: dict[str, Any] | None, reopen_count: int) -> bool:
    """True for an incident whose current opening was ``orchestrator recover``: a person's decision,
    which never counts toward crash-loop or flap detection."""
    return (details or {}).get(MANUAL_KEY) == reopen_count


def _history(session: Session, incident: Incident) -> list[tuple[int, PastIncident, bool]]:
    rows = session.execute(select(Incident.id, Incident.opened_at, Incident.resolved_at, Incident.resolution,
                                  Incident.details, Incident.reopen_count)
                           .where(Incident.component_id == incident.component_id, Incident.id < incident.id)
                           .order_by(Incident.id.desc()).limit(HISTORY_LIMIT)).all()
    return [(iid, PastIncident(opened, resolved, resolution), opened_manually(details, reopened))
            for iid, opened, resolved, resolution, details, reopened in rows]


def past_incidents(session: Session, incident: Incident) -> list[PastIncident]:
    """The component's automatic incidents before ``incident``, newest first (those an operator opened
    with ``orchestrator recover`` are left out: a manual recovery is not a crash-loop cycle)."""
    return [past for _id, past, manual in _history(session, incident) if not manual]


@dataclass(frozen=True)
class CrashLoopView:
    """The component's current crash loop, as the flapping guard judges it."""

    incidents: int  # incidents in a row of fail-recover cycles when that makes it flapping, else 0
    started_at: datetime  # when the loop's first incident opened (this incident's when there is no loop)
    actions: int  # automatic actions since then


def crash_loop_of(session: Session, incident: Incident, config: CrashLoop) -> CrashLoopView:
    """The chain of incidents each opened within ``reset_after`` of the one before it closing, ending
    with ``incident`` (still open, so the chain never expires while it waits), and the automatic
    actions since its first one opened. Incidents opened by a manual recovery are skipped, and so are
    their actions."""
    started, manual_ids = incident.opened_at, set()
    chain, later_opened = 1, incident.opened_at
    for iid, past, manual in _history(session, incident):
        if manual:
            manual_ids.add(iid)
            continue
        if past.resolved_at is None or later_opened - past.resolved_at > timedelta(seconds=config.reset_after_s):
            break
        chain, later_opened, started = chain + 1, past.opened_at, past.opened_at
    if opened_manually(incident.details, incident.reopen_count):
        manual_ids.add(incident.id)
    acted = session.scalars(select(JournalEntry.incident_id).where(
        JournalEntry.component_id == incident.component_id, JournalEntry.executed.is_(True),
        JournalEntry.claimed_at >= started)).all()
    actions = sum(1 for iid in acted if iid not in manual_ids)
    return CrashLoopView(chain if chain >= config.flap_incidents else 0, started, actions)


def guard_input(session: Session, *, row: Component, incident: Incident, plan: Plan, limits: Limits,
                health: HealthView, now: datetime, manual: bool, error_handling_enabled: bool,
                breaker_trial_held: bool, strategy: str = "", degradation: str = "normal") -> GuardInput:
    """Everything :func:`guards.evaluate` needs, read now."""
    counts = health.counts()
    state = health.state(row.id)
    episode = health.flap_episode(row.id)
    acted_episodes = (incident.details or {}).get("acted_flap_episodes", [])
    history = journal.action_times(session, row.id, now - timedelta(seconds=plan.budget.window_s))
    loop = crash_loop_of(session, incident, limits.crash_loop)
    return GuardInput(
        now=now, component=row.name, manual=manual, error_handling_enabled=error_handling_enabled,
        view_reliable=health.view_reliable(), hold=hold_of(row, now),
        flapping=state is ComponentState.FLAPPING, flap_episode=episode,
        acted_this_episode=episode in acted_episodes,
        cycling_incidents=loop.incidents, acted_this_cycle=loop.actions > 0,
        loop_started_at=loop.started_at, loop_actions=loop.actions,
        escalate_actions=limits.crash_loop.escalate_actions, escalate_after_s=limits.crash_loop.escalate_after_s,
        down_roots=tuple(name for name, _ in down_roots(session, row.id, health)),
        fleet_down=counts.get(ComponentState.DOWN, 0), fleet_total=sum(counts.values()),
        max_unhealthy_fraction=limits.max_unhealthy_fraction, min_components=limits.min_components,
        min_down=limits.min_down,
        budget=RecoveryBudget(plan.budget.max_actions, plan.budget.window_s, history),
        breaker=breaker_for(row, limits), breaker_trial_held=breaker_trial_held,
        degradation=degradation, strategy=strategy, criticality=row.criticality,
    )

