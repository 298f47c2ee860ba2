"""Build the guards' input for one component from the database and the live health view."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.core.states import ComponentState
from orchestrator.db.models import Component, ComponentDependency, Incident
from orchestrator.plans import Limits, Plan
from orchestrator.recovery import journal
from orchestrator.recovery.guards import GuardInput
from orchestrator.recovery.health_view import HealthView
from orchestrator.resilience.breaker import BreakerConfig, CircuitBreaker
from orchestrator.resilience.budget import RecoveryBudget


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
        return "in maintenance"
    return None


def down_roots(session: Session, component_id: int, states: dict[int, ComponentState]) -> tuple[str, ...]:
    """Names of DOWN dependencies (direct or transitive) that have no DOWN dependency themselves:
    the real causes. A DOWN dependency whose own dependency is DOWN is blocked too, so the action
    goes only to the deepest one."""
    edges: dict[int, list[int]] = {}
    for cid, dep in session.execute(select(ComponentDependency.component_id, ComponentDependency.depends_on_id)):
        edges.setdefault(cid, []).append(dep)
    names = dict(session.execute(select(Component.id, Component.name)).all())
    down = {cid for cid, s in states.items() if s is ComponentState.DOWN}
    roots: set[int] = set()
    seen: set[int] = set()
    stack = [d for d in edges.get(component_id, []) if d in down]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        deeper = [d for d in edges.get(node, []) if d in down]
        if deeper:
            stack.extend(deeper)
        else:
            roots.add(node)
    return tuple(sorted(names[r] for r in roots if r in names))


def guard_input(session: Session, *, row: Component, incident: Incident, plan: Plan, limits: Limits,
                health: HealthView, now: datetime, manual: bool, error_handling_enabled: bool,
                breaker_trial_held: bool) -> GuardInput:
    """Everything :func:`guards.evaluate` needs, read now."""
    states = health.states()
    state = states.get(row.id) or health.state(row.id)
    episode = health.flap_episode(row.id)
    acted_episodes = (incident.details or {}).get("acted_flap_episodes", [])
    window = timedelta(seconds=plan.budget.window_s)
    history = journal.action_times(session, row.id, now - window)
    return GuardInput(
        now=now, component=row.name, manual=manual, error_handling_enabled=error_handling_enabled,
        view_reliable=health.view_reliable(), hold=hold_of(row, now),
        flapping=state is ComponentState.FLAPPING, flap_episode=episode,
        acted_this_episode=episode in acted_episodes,
        down_roots=down_roots(session, row.id, states),
        fleet_down=sum(1 for s in states.values() if s is ComponentState.DOWN), fleet_total=len(states),
        max_unhealthy_fraction=limits.max_unhealthy_fraction, min_components=limits.min_components,
        budget=RecoveryBudget(plan.budget.max_actions, plan.budget.window_s, history),
        breaker=breaker_for(row, limits), breaker_trial_held=breaker_trial_held,
    )
