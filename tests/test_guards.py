"""The guard table: each guard alone, their order, and what manual recoveries skip. Pure: no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.core.states import IncidentStatus
from orchestrator.recovery.guards import GuardInput, Verdict, breaker_allows, evaluate, mass_outage
from orchestrator.resilience.breaker import BreakerConfig, BreakerState, CircuitBreaker
from orchestrator.resilience.budget import RecoveryBudget

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
BASE = GuardInput(now=NOW, component="web", fleet_down=1, fleet_total=10)


def spent_budget() -> RecoveryBudget:
    return RecoveryBudget(2, 3600, [NOW - timedelta(minutes=5), NOW - timedelta(minutes=1)])


def open_breaker(until: datetime = NOW + timedelta(minutes=5)) -> CircuitBreaker:
    return CircuitBreaker(BreakerConfig(), state=BreakerState.OPEN, consecutive_failures=3, opened_until=until)


SCENARIOS = [
    ("all-clear", {}, Verdict.ACT, "", None),
    ("sentinels", {"view_reliable": False}, Verdict.SKIP, "sentinels", IncidentStatus.BLOCKED),
    ("blast-radius", {"fleet_down": 6, "fleet_total": 10}, Verdict.SKIP, "blast_radius", IncidentStatus.BLOCKED),
    # regression: "more than" 50% never tripped at exactly half the fleet down
    ("exactly-half-down-is-mass", {"fleet_down": 5, "fleet_total": 10}, Verdict.SKIP, "blast_radius",
     IncidentStatus.BLOCKED),
    ("under-half-down-is-not-mass", {"fleet_down": 4, "fleet_total": 10}, Verdict.ACT, "", None),
    # degradation: no level the rules compute holds a step back; an operator's EMERGENCY override does
    ("minimal-level-blocks-nothing", {"degradation": "minimal", "strategy": "restart"}, Verdict.ACT, "", None),
    ("emergency-override-freezes", {"degradation": "emergency", "strategy": "restart"}, Verdict.SKIP,
     "degradation", IncidentStatus.BLOCKED),
    ("emergency-override-lets-notify", {"degradation": "emergency", "strategy": "notify"}, Verdict.ACT, "", None),
    ("small-fleet-never-mass", {"fleet_down": 3, "fleet_total": 3}, Verdict.ACT, "", None),
    ("paused", {"hold": "paused"}, Verdict.SKIP, "hold", IncidentStatus.BLOCKED),
    ("dependency", {"down_roots": ("db",)}, Verdict.SKIP, "dependency", IncidentStatus.BLOCKED),
    ("flapping-first-action", {"flapping": True}, Verdict.ACT, "", None),
    ("flapping-second-action", {"flapping": True, "acted_this_episode": True}, Verdict.SKIP, "flapping",
     IncidentStatus.BLOCKED),
    ("breaker-open", {"breaker": open_breaker()}, Verdict.SKIP, "breaker", IncidentStatus.ESCALATED),
    ("breaker-period-over", {"breaker": open_breaker(NOW)}, Verdict.ACT, "", None),
    ("budget-spent", {"budget": spent_budget()}, Verdict.SKIP, "budget", IncidentStatus.ESCALATED),
    ("observe-only", {"error_handling_enabled": False}, Verdict.OBSERVE, "observe_only", None),
    # order: the first objecting guard decides
    ("sentinels-before-everything", {"view_reliable": False, "fleet_down": 9, "hold": "paused",
                                     "error_handling_enabled": False}, Verdict.SKIP, "sentinels", IncidentStatus.BLOCKED),
    ("blast-before-hold", {"fleet_down": 9, "hold": "paused"}, Verdict.SKIP, "blast_radius", IncidentStatus.BLOCKED),
    ("hold-before-dependency", {"hold": "paused", "down_roots": ("db",)}, Verdict.SKIP, "hold", IncidentStatus.BLOCKED),
    ("dependency-before-budget", {"down_roots": ("db",), "budget": spent_budget()}, Verdict.SKIP, "dependency",
     IncidentStatus.BLOCKED),
    ("breaker-before-budget", {"breaker": open_breaker(), "budget": spent_budget()}, Verdict.SKIP, "breaker",
     IncidentStatus.ESCALATED),
    ("guard-reason-wins-over-observe", {"error_handling_enabled": False, "down_roots": ("db",)}, Verdict.SKIP,
     "dependency", IncidentStatus.BLOCKED),
    # manual recoveries skip the automatic-only guards but honour holds and observe-only
    ("manual-ignores-blast", {"manual": True, "fleet_down": 9}, Verdict.ACT, "", None),
    ("manual-ignores-budget-breaker", {"manual": True, "budget": spent_budget(), "breaker": open_breaker()},
     Verdict.ACT, "", None),
    ("manual-honours-hold", {"manual": True, "hold": "in maintenance"}, Verdict.SKIP, "hold", IncidentStatus.BLOCKED),
    ("manual-honours-observe", {"manual": True, "error_handling_enabled": False}, Verdict.OBSERVE, "observe_only",
     None),
]


@pytest.mark.parametrize(("changes", "verdict", "guard", "status"), [s[1:] for s in SCENARIOS],
                         ids=[s[0] for s in SCENARIOS])
def test_guard_table(changes: dict, verdict: Verdict, guard: str, status: IncidentStatus | None) -> None:
    decision = evaluate(replace(BASE, **changes))
    assert (decision.verdict, decision.guard, decision.status) == (verdict, guard, status)
    if verdict is not Verdict.ACT:
        assert decision.reason


def test_dependency_names_the_root_as_blocked_by() -> None:
    decision = evaluate(replace(BASE, down_roots=("db", "cache")))
    assert decision.blocked_by == "db" and "db, cache" in decision.reason


def test_escalating_guards_say_so() -> None:
    assert evaluate(replace(BASE, budget=spent_budget())).escalates
    assert not evaluate(replace(BASE, down_roots=("db",))).escalates


def test_breaker_peek_never_changes_the_breaker() -> None:
    breaker = open_breaker(NOW - timedelta(seconds=1))
    assert breaker_allows(breaker, NOW, trial_held=False)
    assert breaker.state is BreakerState.OPEN  # the executor takes the trial only when it acts
    half = CircuitBreaker(BreakerConfig(), state=BreakerState.HALF_OPEN, opened_until=NOW)
    assert not breaker_allows(half, NOW, trial_held=False)
    assert breaker_allows(half, NOW, trial_held=True)


@pytest.mark.parametrize(("down", "total", "minimum", "expected"),
                         [(12, 20, 4, True), (10, 20, 4, True), (9, 20, 4, False), (3, 3, 4, False),
                          (4, 4, 4, True), (0, 20, 4, False)])
def test_mass_outage_rule(down: int, total: int, minimum: int, expected: bool) -> None:
    assert mass_outage(down, total, 0.5, minimum) is expected


@pytest.mark.parametrize(("down", "total", "expected"), [
    (3, 6, False),   # half of a small fleet: each is recovered (fewer than min_down)
    (4, 6, True),    # at least min_down and at least the fraction
    (10, 20, True),  # exactly the fraction trips it (>=)
    (4, 10, False),  # min_down reached, the fraction not
], ids=["3-of-6", "4-of-6", "10-of-20", "4-of-10"])
def test_mass_outage_needs_min_down_components_down(down: int, total: int, expected: bool) -> None:
    """3 of 6 broken at once are restarted with the shipped limits (0.5, 4 components, 4 down)."""
    assert mass_outage(down, total, 0.5, 4, 4) is expected
