"""Degradation levels, pure: the policy section, the rules, the hysteresis, the self-applied action table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.errors import IllegalTransitionError, PlanError
from orchestrator.core.states import ComponentState as S
from orchestrator.core.states import DegradationLevel as L
from orchestrator.degradation import actions
from orchestrator.degradation.evaluate import LEGAL_TRANSITIONS, Facts, Hysteresis, compute
from orchestrator.degradation.policy import DEFAULT_POLICY, DegradationPolicy, parse_selector
from orchestrator.degradation.signals import FleetSignals
from orchestrator.plans import load_plans

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def fleet(states: list[S]) -> dict[int, S]:
    return dict(enumerate(states, start=1))


# -- the rules -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("states", "critical_ids", "database_ok", "want"), [
    pytest.param([S.UP] * 20, (), True, L.NORMAL, id="all-up"),
    pytest.param([S.DOWN] + [S.UP] * 19, (), True, L.NORMAL, id="5%-down"),
    pytest.param([S.DOWN, S.DEGRADED] + [S.UP] * 18, (), True, L.DEGRADED, id="10%-down-or-degraded"),
    pytest.param([S.DOWN] * 3 + [S.FLAPPING] * 2 + [S.UP] * 15, (), True, L.MINIMAL, id="25%-unhealthy"),
    pytest.param([S.DOWN] * 10 + [S.UP] * 10, (), True, L.EMERGENCY, id="50%-down"),
    pytest.param([S.DOWN] + [S.UP] * 19, (1,), True, L.MINIMAL, id="critical-down"),
    pytest.param([S.DOWN] * 3, (), True, L.NORMAL, id="fleet-of-3-too-small-for-fractions"),
    pytest.param([S.DOWN] + [S.UP] * 2, (1,), True, L.MINIMAL, id="critical-down-in-a-fleet-of-3"),
    pytest.param([S.DEGRADED] + [S.UP] * 19, (1,), True, L.NORMAL, id="critical-degraded-is-not-down"),
    pytest.param([S.UP] * 20, (), False, L.EMERGENCY, id="database-unreachable"),
    pytest.param([S.PAUSED] * 10 + [S.DOWN] + [S.UP] * 9, (), True, L.DEGRADED, id="paused-not-counted"),
])
def test_shipped_rules(states, critical_ids, database_ok, want) -> None:
    facts = Facts(states=fleet(states), critical={"critical": frozenset(critical_ids)}, database_ok=database_ok)
    level, reasons = compute(DEFAULT_POLICY.rules, facts)
    assert level is want
    assert bool(reasons) == (want is not L.NORMAL)


def test_reasons_name_the_numbers_highest_first() -> None:
    facts = Facts(states=fleet([S.DOWN] * 3 + [S.UP] * 7), critical={"critical": frozenset({1})})
    level, reasons = compute(DEFAULT_POLICY.rules, facts)
    assert level is L.MINIMAL
    assert reasons[0].startswith("minimal: ")
    assert any("3 of 10 components" in r and "30%" in r for r in reasons)
    assert any("1 critical component down" in r for r in reasons)


def test_label_group_scope_and_signal_rules() -> None:
    policy = DegradationPolicy.model_validate({"rules": [
        {"when": "label_group", "selector": "team=checkout", "at_least": 0.5, "level": "minimal",
         "min_components": 2},
        {"when": "error_rate", "at_least": 0.2, "level": "degraded", "min_checks": 10},
        {"when": "latency", "p95_above": "300ms", "level": "degraded"},
        {"when": "check_lateness", "p95_above": "2s", "level": "emergency"},
    ]})
    states = fleet([S.DOWN, S.UP, S.UP, S.UP])
    groups = {"team=checkout": frozenset({1, 2})}
    assert compute(policy.rules, Facts(states=states, groups=groups))[0] is L.MINIMAL
    assert compute(policy.rules, Facts(states=states, groups={"team=checkout": frozenset({2, 3})}))[0] is L.NORMAL
    # a scope sees only its members of the group
    assert compute(policy.rules, Facts(states=states, groups=groups), frozenset({2, 3}))[0] is L.NORMAL
    ok = fleet([S.UP] * 4)
    assert compute(policy.rules, Facts(states=ok, checks=9, error_rate=0.5))[0] is L.NORMAL  # too few checks
    assert compute(policy.rules, Facts(states=ok, checks=30, error_rate=0.25))[0] is L.DEGRADED
    assert compute(policy.rules, Facts(states=ok, checks=30, latency_p95_ms=350))[0] is L.DEGRADED
    assert compute(policy.rules, Facts(states=ok, checks=30, latency_p95_ms=250))[0] is L.NORMAL
    assert compute(policy.rules, Facts(states=ok, checks=30, lateness_p95_ms=2500))[0] is L.EMERGENCY


# -- the policy section ----------------------------------------------------------------------------
def _plans_with(tmp_path: Path, degradation: object) -> Path:
    path = tmp_path / "plans.json"
    path.write_text(json.dumps({"version": 1, "plans": {}, "degradation": degradation}))
    return path


@pytest.mark.parametrize(("section", "field", "words"), [
    ({"confirm": 0}, "degradation.confirm", "greater than or equal to 1"),
    ({"hold": "soon"}, "degradation.hold", "not a duration"),
    ({"rules": [{"when": "label_group", "level": "minimal", "at_least": 0.5}]}, "degradation.rules[0]",
     "selector: required"),
    ({"rules": [{"when": "error_rate", "level": "minimal", "at_least": 0.5, "selector": "a=b"}]},
     "degradation.rules[0]", "selector: not used"),
    ({"rules": [{"when": "any_critical_down", "level": "loud"}]}, "degradation.rules[0].level", "'emergency'"),
    ({"rules": [{"when": "unhealthy_fraction", "level": "minimal", "at_least": 1.5}]},
     "degradation.rules[0].at_least", "less than or equal to 1"),
    ({"features": {"loud": {}}}, "degradation.features", "normal"),
    ({"scopes": {"team": {}}}, "degradation.scopes", "key=value"),
    ({"evaluate_every": "2s", "colour": "red"}, "degradation.colour", "unknown"),
])
def test_bad_policy_is_refused_naming_the_field(tmp_path: Path, section, field, words) -> None:
    with pytest.raises(PlanError) as err:
        load_plans(_plans_with(tmp_path, section))
    assert field in str(err.value)
    assert words in str(err.value)


def test_shipped_file_policy_and_feature_maps() -> None:
    plans = load_plans(Path(__file__).parent.parent / "recovery_strategies.json")
    policy = plans.degradation
    assert policy.confirm == 2 and policy.hold_s == 120
    normal = policy.features_at(L.NORMAL)
    assert normal == {"caching": True, "analytics": True, "realtime_updates": True, "background_tasks": True}
    assert policy.features_at(L.DEGRADED)["analytics"] is False
    assert policy.features_at(L.MINIMAL)["realtime_updates"] is False
    emergency = policy.features_at(L.EMERGENCY)
    assert emergency["background_tasks"] is False and emergency["analytics"] is False


def test_scope_features_and_canonical_selector() -> None:
    policy = DegradationPolicy.model_validate({"scopes": {"tier=web, team=checkout": {
        "features": {"degraded": {"recommendations": False}}}}})
    assert policy.scope_names() == ["global", "team=checkout,tier=web"]
    assert policy.features_at(L.DEGRADED, "team=checkout,tier=web")["recommendations"] is False
    assert "recommendations" not in policy.features_at(L.DEGRADED)
    assert parse_selector("b=2,a=1") == (("a", "1"), ("b", "2"))
    with pytest.raises(ValueError):
        parse_selector("a=")


# -- the hysteresis --------------------------------------------------------------------------------
def run(h: Hysteresis, computed: list[L], step_s: float = 1.0) -> list[L]:
    out, now = [], T0
    for level in computed:
        h.step(level, now)
        out.append(h.level)
        now += timedelta(seconds=step_s)
    return out


def test_escalation_waits_for_confirmation() -> None:
    h = Hysteresis(confirm=2, hold_s=10)
    assert run(h, [L.DEGRADED, L.NORMAL, L.DEGRADED, L.DEGRADED]) == [L.NORMAL, L.NORMAL, L.NORMAL, L.DEGRADED]


def test_jump_straight_to_emergency() -> None:
    h = Hysteresis(confirm=2, hold_s=10)
    assert run(h, [L.EMERGENCY, L.EMERGENCY]) == [L.NORMAL, L.EMERGENCY]


def test_escalation_goes_to_the_level_both_evaluations_agree_on() -> None:
    h = Hysteresis(confirm=2, hold_s=10)
    assert run(h, [L.EMERGENCY, L.DEGRADED]) == [L.NORMAL, L.DEGRADED]


def test_de_escalation_one_level_per_hold() -> None:
    h = Hysteresis(confirm=2, hold_s=10, level=L.EMERGENCY)
    levels = run(h, [L.NORMAL] * 32)  # one evaluation a second
    assert levels[9] is L.EMERGENCY and levels[10] is L.MINIMAL
    assert levels[19] is L.MINIMAL and levels[20] is L.DEGRADED
    assert levels[29] is L.DEGRADED and levels[30] is L.NORMAL
    assert {levels[i] for i in range(10)} == {L.EMERGENCY}


def test_signal_flapping_every_evaluation_never_de_escalates() -> None:
    h = Hysteresis(confirm=2, hold_s=5, level=L.DEGRADED)
    levels = run(h, [L.MINIMAL, L.NORMAL] * 100)
    assert set(levels) == {L.DEGRADED}
    h = Hysteresis(confirm=2, hold_s=5, level=L.DEGRADED)
    assert set(run(h, [L.DEGRADED, L.NORMAL] * 100)) == {L.DEGRADED}


def test_transition_table_refuses_more_than_one_level_down() -> None:
    assert (L.NORMAL, L.EMERGENCY) in LEGAL_TRANSITIONS
    assert (L.EMERGENCY, L.DEGRADED) not in LEGAL_TRANSITIONS
    h = Hysteresis(confirm=1, hold_s=0, level=L.EMERGENCY)
    with pytest.raises(IllegalTransitionError):
        h._move(L.NORMAL, T0)


# -- what the orchestrator applies to itself -------------------------------------------------------
STRATEGIES = ("restart", "failover", "scale_up", "scale_down", "rollback", "notify", "http")


@pytest.mark.parametrize("level", list(L), ids=lambda level: level.value)
def test_only_a_frozen_automation_holds_a_step_back(level: L) -> None:
    """Regression: MINIMAL blocked every step but restart/failover of critical components, DEGRADED
    blocked scale_up. Now only EMERGENCY (an operator's override) holds steps back: notify only."""
    for strategy in STRATEGIES:
        for criticality in ("critical", "high", "normal", "low"):
            ok, reason = actions.allowed(level, strategy, criticality)
            assert ok is (level is not L.EMERGENCY or strategy == "notify"), (level, strategy, criticality)
            assert bool(reason) is not ok
            assert ok or "operator EMERGENCY override" in reason


def test_overload_stretches_up_low_and_normal_at_most_twice_and_never_skips() -> None:
    """Regression: MINIMAL and EMERGENCY skipped every check of UP normal/low components (None)."""
    assert [actions.check_factor(L.NORMAL, c) for c in ("critical", "high", "normal", "low")] == [1.0] * 4
    assert [actions.check_factor(L.DEGRADED, c) for c in ("critical", "high", "normal", "low")] == [1, 1, 1, 2]
    for level in (L.MINIMAL, L.EMERGENCY):
        assert [actions.check_factor(level, c) for c in ("critical", "high", "normal", "low")] == [1, 1, 2, 2]
    for level in L:
        for factors in actions.CHECK_FACTORS[level].values():
            assert factors is not None and 1.0 <= factors <= actions.MAX_STRETCH


# -- the fleet signals -----------------------------------------------------------------------------
def test_signals_window_error_rate_and_p95() -> None:
    clock = FakeClock()
    signals = FleetSignals(clock)
    for i in range(100):
        signals.observe(i % 10 != 0, 20.0 if i < 96 else 900.0, 5.0)
    w = signals.window(10)
    assert w.checks == 100 and w.error_rate == pytest.approx(0.1)
    assert 18 <= w.latency_p95_ms <= 23  # 95th of 100 lands among the 20 ms ones (bucket width 10%)
    signals.observe(True, 900.0, 5.0)
    clock.advance(30)
    assert signals.window(10).checks == 0 and signals.window(10).latency_p95_ms is None
    assert signals.window(60).checks == 101


@pytest.mark.parametrize("state", [S.DOWN, S.DEGRADED, S.FLAPPING, S.UNKNOWN])
def test_unhealthy_components_are_never_shed(state: S) -> None:
    # otherwise a level raised by unhealthy components would hold itself up by not checking them
    for level in L:
        assert actions.check_factor(level, "low", state) == 1.0
    assert actions.check_factor(L.MINIMAL, "low", S.UP) == actions.MAX_STRETCH
