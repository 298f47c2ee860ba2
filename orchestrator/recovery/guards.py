"""Guards: may a recovery action run now? Pure and table-driven: a snapshot in, a decision out.

The guards are evaluated in the order of :data:`GUARDS`; the first that objects decides. The order
is deliberate:

1. ``sentinels`` — when the orchestrator's own sentinel checks fail, every other input (fleet,
   dependency and flap states) is suspect, so nothing else can be trusted to decide.
2. ``blast_radius`` — ``max_unhealthy_fraction`` or more of at least ``min_components`` components
   DOWN at once is most likely the network or the orchestrator itself: no automatic action at all, and
   one mass-outage incident escalated to a person (:mod:`orchestrator.recovery.outage`). This is the
   only fleet-wide restraint: degradation levels never block a step. It must never break invariant 6
   (never silent): it names itself in every incident it holds, and a person is told.
3. ``hold`` — an operator paused the component or put it in maintenance: human intent wins.
   ``degradation`` — an operator's global EMERGENCY override froze automation: notify only
   (:mod:`orchestrator.degradation.actions`; no level the rules compute blocks anything).
4. ``dependency`` — a dependency is DOWN: the root gets the action, this one is ``blocked_by`` it.
5. ``flapping`` — at most one action per flap episode: the tracker's (results alternating), or a run of
   fail-recover cycles (``limits.crash_loop.flap_incidents`` incidents within ``reset_after``).
6. ``breaker`` — repeated exhausted plans: automation stops and a human is told.
7. ``budget`` — too many actions in the window: automation stops and a human is told.
8. ``observe_only`` — ERROR_HANDLING_ENABLED=false. Last on purpose: the journal then records what
   would really have happened (a guard's refusal, or the action that would have run).

A manual recovery (``orchestrator recover``) is an operator's decision: it passes the guards that
protect against *automatic* action (1, 2, 4, 5, 6, 7) and still honours holds and observe-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from orchestrator.core.states import IncidentStatus
from orchestrator.degradation.actions import allowed
from orchestrator.resilience.breaker import BreakerState, CircuitBreaker
from orchestrator.resilience.budget import RecoveryBudget


class Verdict(StrEnum):
    ACT = "act"
    SKIP = "skip"  # a guard objected: record the reason, set the incident status
    OBSERVE = "observe"  # record what would have run, run nothing


@dataclass(frozen=True)
class GuardInput:
    """Everything the guards look at, read once per decision."""

    now: datetime
    component: str
    manual: bool = False
    error_handling_enabled: bool = True
    view_reliable: bool = True
    hold: str | None = None  # "paused until …" / "in maintenance until …", None when not held
    flapping: bool = False
    flap_episode: int = 0
    acted_this_episode: bool = False
    cycling_incidents: int = 0  # incidents within the crash-loop window, when that makes it flapping
    acted_this_cycle: bool = False  # an action ran within that window
    down_roots: tuple[str, ...] = ()  # DOWN dependencies that are themselves the root cause
    fleet_down: int = 0
    fleet_total: int = 0
    max_unhealthy_fraction: float = 0.5
    min_components: int = 4
    budget: RecoveryBudget | None = None
    breaker: CircuitBreaker | None = None
    breaker_trial_held: bool = False  # this run already holds the breaker's half-open trial
    degradation: str = "normal"  # the degradation level applied to automation now
    strategy: str = ""  # the step's strategy
    criticality: str = "normal"  # the component's


@dataclass(frozen=True)
class Decision:
    """The guards' answer. ``status`` is what the incident becomes when the verdict is SKIP."""

    verdict: Verdict
    guard: str = ""
    reason: str = ""
    status: IncidentStatus | None = None
    blocked_by: str | None = None

    @property
    def escalates(self) -> bool:
        """True when a human must be told (the incident is escalated)."""
        return self.status is IncidentStatus.ESCALATED


ACT = Decision(Verdict.ACT)


def _blocked(guard: str, reason: str, blocked_by: str | None = None) -> Decision:
    return Decision(Verdict.SKIP, guard, reason, IncidentStatus.BLOCKED, blocked_by)


def _escalate(guard: str, reason: str) -> Decision:
    return Decision(Verdict.SKIP, guard, reason, IncidentStatus.ESCALATED)


def mass_outage(fleet_down: int, fleet_total: int, max_unhealthy_fraction: float, min_components: int) -> bool:
    """True when too many components are DOWN at once for any automatic action: at least
    ``max_unhealthy_fraction`` of a fleet of at least ``min_components`` (at 0.5, 10 of 20 trips it)."""
    return fleet_total >= min_components and fleet_down >= max_unhealthy_fraction * fleet_total


def breaker_allows(breaker: CircuitBreaker, now: datetime, trial_held: bool) -> bool:
    """Like ``breaker.check`` but without changing it: the executor takes the trial when it acts."""
    if breaker.state is BreakerState.CLOSED:
        return True
    if breaker.state is BreakerState.HALF_OPEN:
        return trial_held
    return breaker.opened_until is not None and now >= breaker.opened_until


def _sentinels(g: GuardInput) -> Decision | None:
    if not g.view_reliable:
        return _blocked("sentinels", "the orchestrator's own sentinel checks are failing; its view is unreliable")
    return None


def _blast_radius(g: GuardInput) -> Decision | None:
    if mass_outage(g.fleet_down, g.fleet_total, g.max_unhealthy_fraction, g.min_components):
        return _blocked("blast_radius", f"mass outage: {g.fleet_down} of {g.fleet_total} components down "
                                        f"(at least {g.max_unhealthy_fraction:.0%}); no automatic action")
    return None


def _hold(g: GuardInput) -> Decision | None:
    return _blocked("hold", f"component {g.hold}") if g.hold else None


def _degradation(g: GuardInput) -> Decision | None:
    ok, reason = allowed(g.degradation, g.strategy, g.criticality)
    return None if ok else _blocked("degradation", reason)


def _dependency(g: GuardInput) -> Decision | None:
    if g.down_roots:
        roots = ", ".join(g.down_roots)
        return _blocked("dependency", f"dependency down: {roots} (the root gets the action)", g.down_roots[0])
    return None


def _flapping(g: GuardInput) -> Decision | None:
    if g.flapping and g.acted_this_episode:
        return _blocked("flapping", f"flapping: already acted once in flap episode {g.flap_episode}")
    if g.cycling_incidents and g.acted_this_cycle:
        return _blocked("flapping", f"flapping: {g.cycling_incidents} incidents in a row of fail-recover cycles; "
                                    "already acted once in this episode")
    return None


def _breaker(g: GuardInput) -> Decision | None:
    if g.breaker is not None and not breaker_allows(g.breaker, g.now, g.breaker_trial_held):
        until = g.breaker.opened_until.isoformat() if g.breaker.opened_until else "?"
        return _escalate("breaker", f"recovery breaker {g.breaker.state.value} until {until} after "
                                    f"{g.breaker.consecutive_failures} failed recoveries")
    return None


def _budget(g: GuardInput) -> Decision | None:
    if g.budget is not None and not g.budget.allows(g.now):
        return _escalate("budget", f"recovery budget spent: {g.budget.used(g.now)} actions within "
                                   f"{g.budget.window.total_seconds():g}s (max {g.budget.max_actions})")
    return None


def _observe_only(g: GuardInput) -> Decision | None:
    if not g.error_handling_enabled:
        return Decision(Verdict.OBSERVE, "observe_only", "observe only: ERROR_HANDLING_ENABLED=false")
    return None


#: (name, check, applies to manual recoveries), in evaluation order.
GUARDS: tuple[tuple[str, Callable[[GuardInput], Decision | None], bool], ...] = (
    ("sentinels", _sentinels, False),
    ("blast_radius", _blast_radius, False),
    ("hold", _hold, True),
    ("degradation", _degradation, False),
    ("dependency", _dependency, False),
    ("flapping", _flapping, False),
    ("breaker", _breaker, False),
    ("budget", _budget, False),
    ("observe_only", _observe_only, True),
)


def evaluate(g: GuardInput) -> Decision:
    """The first objecting guard's decision, or ACT."""
    for _name, check, manual_too in GUARDS:
        if g.manual and not manual_too:
            continue
        decision = check(g)
        if decision is not None:
            return decision
    return ACT
