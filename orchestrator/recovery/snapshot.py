"""Build the guards' input for one component from the database and the live health view.

The fleet-wide figures come from ``HealthView.counts()`` (kept by the health plane as states change),
and the dependency walk asks only about the component's own dependencies: a decision costs the same
in a fleet of 20 and of 10,000.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.core.states import ComponentState
from orchestrator.db.models import Component, ComponentDependency, Incident, JournalEntry
from orchestrator.plans import CrashLoop, Limits, Plan
from orchestrator.recovery import journal
from orchestrator.recovery.guards import GuardInput
from orchestrator.recovery.health_view import HealthView
from orchestrator.recovery.retry import PastIncident, cycling
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
        return "in maintenance"
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


def past_incidents(session: Session, incident: Incident) -> list[PastIncident]:
    """The component's incidents before ``incident``, newest first."""
    rows = session.execute(select(Incident.opened_at, Incident.resolved_at, Incident.resolution)
                           .where(Incident.component_id == incident.component_id, Incident.id < incident.id)
                           .order_by(Incident.id.desc()).limit(HISTORY_LIMIT)).all()
    return [PastIncident(*row) for row in rows]


def cycle_of(session: Session, incident: Incident, now: datetime, config: CrashLoop) -> tuple[int, bool]:
    """(incidents within the crash-loop window when they make the component flapping else 0, whether an
    action ran within that window)."""
    since = now - timedelta(seconds=config.reset_after_s)
    opened = [incident.opened_at, *(p.opened_at for p in past_incidents(session, incident))]
    if not cycling(now, opened, config):
        return 0, False
    acted = session.scalar(select(JournalEntry.id).where(
        JournalEntry.component_id == incident.component_id, JournalEntry.executed.is_(True),
        JournalEntry.claimed_at >= since).limit(1))
    return sum(1 for at in opened if at >= since), acted is not None


def guard_input(session: Session, *, row: Component, incident: Incident, plan: Plan, limits: Limits,
                health: HealthView, now: datetime, manual: bool, error_handling_enabled: bool,
                breaker_trial_held: bool, strategy: str = "", degradation: str = "normal") -> GuardInput:
    """Everything :func:`guards.evaluate` needs, read now."""
    counts = health.counts()
    state = health.state(row.id)
    episode = health.flap_episode(row.id)
    acted_episodes = (incident.details or {}).get("acted_flap_episodes", [])
    history = journal.action_times(session, row.id, now - timedelta(seconds=plan.budget.window_s))
    cycle_incidents, acted_this_cycle = cycle_of(session, incident, now, limits.crash_loop)
    return GuardInput(
        now=now, component=row.name, manual=manual, error_handling_enabled=error_handling_enabled,
        view_reliable=health.view_reliable(), hold=hold_of(row, now),
        flapping=state is ComponentState.FLAPPING, flap_episode=episode,
        acted_this_episode=episode in acted_episodes,
        cycling_incidents=cycle_incidents, acted_this_cycle=acted_this_cycle,
        down_roots=tuple(name for name, _ in down_roots(session, row.id, health)),
        fleet_down=counts.get(ComponentState.DOWN, 0), fleet_total=sum(counts.values()),
        max_unhealthy_fraction=limits.max_unhealthy_fraction, min_components=limits.min_components,
        budget=RecoveryBudget(plan.budget.max_actions, plan.budget.window_s, history),
        breaker=breaker_for(row, limits), breaker_trial_held=breaker_trial_held,
        degradation=degradation, strategy=strategy, criticality=row.criticality,
    )

