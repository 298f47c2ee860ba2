"""Guards: may a recovery action run now? Pure and table-driven: a snapshot in, a decision out.

The guards are evaluated in the order of :data:`GUARDS`; the first that objects decides. The order
is deliberate:

1. ``sentinels`` — when the orchestrator's own sentinel checks fail, every other input (fleet,
   dependency and flap states) is suspect, so nothing else can be trusted to decide.
2. ``blast_radius`` — ``max_unhealthy_fraction`` or more of at least ``min_components`` components
   (and at least ``min_down`` of them) DOWN at once is most likely the network or the orchestrator itself: no automatic action at all, and
   one mass-outage incident escalated to a person (:mod:`orchestrator.recovery.outage`). This is the
   only fleet-wide restraint: degradation levels never block a step. It must never break invariant 6
   (never silent): it names itself in every incident it holds, and a person is told.
3. ``hold`` — an operator paused the component or put it in maintenance: human intent wins.
   ``degradation`` — an operator's global EMERGENCY override froze automation: notify only
   (:mod:`orchestrator.degradation.actions`; no level the rules compute blocks anything).
4. ``dependency`` — a dependency is DOWN: the root gets the action, this one is ``blocked_by`` it.
5. ``flapping`` — at most one action per flap episode: the tracker's (results alternating), or a run of
   fail-recover cycles (``limits.crash_loop.flap_incidents`` incidents in a row, each within
   ``reset_after`` of the one before closing). It holds the loop for a bounded time only: a loop that
   already had ``escalate_actions`` actions, or that is held ``escalate_after`` after it began,
   escalates to a person (invariant 6: a guard ends in an action or a person, never in a silent wait).
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
from datetime import datetime, timedelta
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
    loop_started_at: datetime | None = None  # when the crash loop (its first incident) began
    loop_actions: int = 0  # automatic actions since the crash loop began
    escalate_actions: int = 3  # limits.crash_loop.escalate_actions
    escalate_after_s: float = 600.0  # limits.crash_loop.escalate_after
    down_roots: tuple[str, ...] = ()  # DOWN dependencies that are themselves the root cause
    fleet_down: int = 0
    fleet_total: int = 0
    max_unhealthy_fraction: float = 0.5
    min_components: int = 4
    min_down: int = 4
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
    #: when a SKIP that blocks is looked at again at the latest (None: when its cause clears)
    until: datetime | None = None

    @property
    def escalates(self) -> bool:
        """True when a human must be told (the incident is escalated)."""
        return self.status is IncidentStatus.ESCALATED


ACT = Decision(Verdict.ACT)


def _blocked(guard: str, reason: str, blocked_by: str | None = None, until: datetime | None = None) -> Decision:
    return Decision(Verdict.SKIP, guard, reason, IncidentStatus.BLOCKED, blocked_by, until)


def _escalate(guard: str, reason: str) -> Decision:
    return Decision(Verdict.SKIP, guard, reason, IncidentStatus.ESCALATED)


def mass_outage(fleet_down: int, fleet_total: int, max_unhealthy_fraction: float, min_components: int,
                min_down: int = 1) -> bool:
    """True when too many components are DOWN at once for any automatic action: at least
    ``max_unhealthy_fraction`` of a fleet of at least ``min_components``, and at least ``min_down`` of
    them (at 0.5 and 4: 10 of 20 trips it, 3 of 6 does not, 4 of 6 does)."""
    return (fleet_total >= min_components and fleet_down >= min_down
            and fleet_down >= max_unhealthy_fraction * fleet_total)


def breaker_allows(breaker: CircuitBreaker, now: datetime, trial_held: bool) -> bool:
    """Like ``breaker.check`` but without changing it: the executor takes the trial when it acts."""
    if breaker.state is BreakerState.CLOSED:
        return True
    if breaker.state is BreakerState.HALF_OPEN:
        return trial_held
    return breaker.opened_until is not None and now >= breaker.opened_until


def _sentinels(g: GuardInput) -> Decision | None:
    """Block while the orchestrator's own sentinel checks fail. Must never break invariant 6: the block
    is visible (incident, page, status) and lifts by itself when the sentinels answer (worklist)."""
    if not g.view_reliable:
        return _blocked("sentinels", "the orchestrator's own sentinel checks are failing; its view is unreliable")
    return None


def _blast_radius(g: GuardInput) -> Decision | None:
    if mass_outage(g.fleet_down, g.fleet_total, g.max_unhealthy_fraction, g.min_components, g.min_down):
        return _blocked("blast_radius", f"mass outage: {g.fleet_down} of {g.fleet_total} components down "
                                        f"(at least {g.max_unhealthy_fraction:.0%}); no automatic action")
    return None


def _hold(g: GuardInput) -> Decision | None:
    """A person paused the component or put it in maintenance. Must never break invariant 6: only a
    person's decision stops action here, and it ends with the hold (worklist wakes it at once)."""
    return _blocked("hold", f"component {g.hold}") if g.hold else None


def _degradation(g: GuardInput) -> Decision | None:
    """The action table of the level applied to automation. Must never break invariant 6: a level
    restrains actions, never detection; the block names the level and lifts when the level drops."""
    ok, reason = allowed(g.degradation, g.strategy, g.criticality)
    return None if ok else _blocked("degradation", reason)


def _dependency(g: GuardInput) -> Decision | None:
    """A DOWN dependency is the real cause (invariant 3). Must never break invariant 6: the root gets
    the action (its own incident acts or escalates), and this one is looked at again when it is back."""
    if g.down_roots:
        roots = ", ".join(g.down_roots)
        return _blocked("dependency", f"dependency down: {roots} (the root gets the action)", g.down_roots[0])
    return None


def _flapping(g: GuardInput) -> Decision | None:
    """One action per flap episode, and a held crash loop ends with a person.

    Invariant it must never break (DESIGN.md 6, docs/guarantees.md): a guard ends in an action or a
    person. So it never holds without a deadline: a loop that had ``escalate_actions`` actions
    escalates instead of acting again, and a hold lasts until ``escalate_after`` past the loop's start
    at most, then escalates; until then the block says until when."""
    in_loop = g.flapping or g.cycling_incidents > 0
    if in_loop and g.loop_actions >= g.escalate_actions:
        return _escalate("flapping", f"crash loop: {g.loop_actions} actions since it began did not hold "
                                     f"(limits.crash_loop.escalate_actions {g.escalate_actions}); a person must look")
    if g.flapping and g.acted_this_episode:
        why = f"flapping: already acted once in flap episode {g.flap_episode}"
    elif g.cycling_incidents and g.acted_this_cycle:
        why = (f"flapping: {g.cycling_incidents} incidents in a row of fail-recover cycles; "
               "already acted once in this episode")
    else:
        return None
    started = g.loop_started_at or g.now
    until = started + timedelta(seconds=g.escalate_after_s)
    if g.now >= until:
        return _escalate("flapping", f"{why}; held since {started:%Y-%m-%d %H:%M:%S}Z, longer than "
                                     f"limits.crash_loop.escalate_after ({g.escalate_after_s:g}s): a person must look")
    return _blocked("flapping", f"{why}; escalates at {until:%Y-%m-%d %H:%M:%S}Z unless it settles", until=until)


def _breaker(g: GuardInput) -> Decision | None:
    """Repeated failed recoveries open the breaker (invariant 3). Must never break invariant 6: it never
    holds silently, it escalates to a person."""
    if g.breaker is not None and not breaker_allows(g.breaker, g.now, g.breaker_trial_held):
        until = g.breaker.opened_until.isoformat() if g.breaker.opened_until else "?"
        return _escalate("breaker", f"recovery breaker {g.breaker.state.value} until {until} after "
                                    f"{g.breaker.consecutive_failures} failed recoveries")
    return None


def _budget(g: GuardInput) -> Decision | None:
    """Too many actions in the window (invariant 3). Must never break invariant 6: it escalates to a
    person, never waits silently."""
    if g.budget is not None and not g.budget.allows(g.now):
        return _escalate("budget", f"recovery budget spent: {g.budget.used(g.now)} actions within "
                                   f"{g.budget.window.total_seconds():g}s (max {g.budget.max_actions})")
    return None


def _observe_only(g: GuardInput) -> Decision | None:
    """``ERROR_HANDLING_ENABLED=false`` is a person's decision (invariant 6): the journal records what
    would have run, and each incident says so."""
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
