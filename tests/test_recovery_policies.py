"""The pure policies of recovery: retries, crash-loop backoff, fail-recover flapping, action slots,
and which blocked incidents the loop wakes (no I/O)."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.core.states import ComponentState
from orchestrator.plans import CrashLoop
from orchestrator.recovery import slots, worklist
from orchestrator.recovery.guards import GuardInput, Verdict, evaluate
from orchestrator.recovery.retry import PastIncident, RetryPolicy, crash_loop_delay_s, cycling
from tests.test_recovery_support import ScriptedHealth, plan_set

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
LOOP = CrashLoop()  # 10 s doubling to 5 min, reset after 10 min healthy, 3 incidents make it flapping


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def auto(opened_s: float, resolved_s: float) -> PastIncident:
    return PastIncident(ago(opened_s), ago(resolved_s), "auto")


CRASH_LOOP = [
    ("first-failure", [], 0.0),
    ("after-a-long-healthy-period", [auto(2000, 1990)], 0.0),
    ("soon-after-one-verified-recovery", [auto(60, 50)], 10.0),
    ("second-in-a-row", [auto(60, 50), auto(120, 110)], 20.0),
    ("healed-by-itself-does-not-grow-it", [PastIncident(ago(60), ago(50), "self"), auto(120, 110)], 10.0),
    ("streak-broken-by-a-long-gap", [auto(60, 50), auto(5000, 4990)], 10.0),
    ("capped", [auto(60 * (i + 1), 60 * i + 50) for i in range(9)], 300.0),
]


@pytest.mark.parametrize(("history", "delay"), [c[1:] for c in CRASH_LOOP], ids=[c[0] for c in CRASH_LOOP])
def test_crash_loop_delay_grows_with_verified_recoveries_in_a_row(history, delay) -> None:
    assert crash_loop_delay_s(NOW, history, LOOP) == delay


def test_three_incidents_within_the_window_make_fail_recover_cycles_flapping() -> None:
    assert not cycling(NOW, [NOW, ago(5)], LOOP)
    assert cycling(NOW, [NOW, ago(5), ago(10)], LOOP)
    assert not cycling(NOW, [NOW, ago(5), ago(700)], LOOP)  # the third is outside reset_after


def test_cycling_component_gets_one_action_per_episode() -> None:
    base = GuardInput(now=NOW, component="web", fleet_total=10)
    first = GuardInput(**{**base.__dict__, "cycling_incidents": 3, "acted_this_cycle": False})
    again = GuardInput(**{**base.__dict__, "cycling_incidents": 3, "acted_this_cycle": True})
    assert evaluate(first).verdict is Verdict.ACT
    decision = evaluate(again)
    assert (decision.verdict, decision.guard) == (Verdict.SKIP, "flapping") and "3 incidents" in decision.reason


def test_retry_policy_backs_off_with_full_jitter_and_stops_after_the_attempts() -> None:
    step = plan_set({"p": {"steps": [{"strategy": "wait", "attempts": 3,
                                      "backoff": {"base": "1s", "cap": "4s"}}]}}).plans["p"].steps[0]
    policy = RetryPolicy(step, random.Random(7))
    delays = [policy.next_delay_s(n) for n in (1, 2)]
    assert 0 <= delays[0] <= 1 and 0 <= delays[1] <= 2
    assert policy.next_delay_s(3) is None


@pytest.mark.parametrize(("configured", "fleet", "limit"), [
    (None, 0, 4), (None, 20, 4), (None, 40, 4), (None, 41, 5), (None, 200, 20), (None, 10_000, 1000), (2, 200, 2),
])
def test_default_slot_limit_scales_with_the_fleet_with_a_floor(configured, fleet, limit) -> None:
    assert slots.default_limit(configured, fleet) == limit


def test_slots_bound_holders_and_follow_a_new_limit() -> None:
    stop = threading.Event()
    pool = slots.ActionSlots(1)
    assert pool.acquire(stop)
    waiter = threading.Thread(target=lambda: pool.acquire(stop))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and pool.in_use == 1  # the limit holds the second one back
    pool.set_limit(2)
    waiter.join(5)
    assert not waiter.is_alive() and pool.in_use == 2
    stop.set()
    assert not pool.acquire(stop)  # shutdown never hands out a slot


WAKES = [
    ("dependency-still-down", "dependency", {"blocked_by_id": 2}, {2: ComponentState.DOWN}, False),
    ("dependency-recovered", "dependency", {"blocked_by_id": 2}, {2: ComponentState.UP}, True),
    ("hold-still-on", "hold", {"blocked_state": "paused"}, {1: ComponentState.PAUSED}, False),
    ("hold-ended", "hold", {"blocked_state": "paused"}, {1: ComponentState.UNKNOWN}, True),
    ("flapping-still", "flapping", {"blocked_state": "flapping", "blocked_episode": 0}, {1: ComponentState.FLAPPING},
     False),
    ("flapping-settled-down", "flapping", {"blocked_state": "flapping", "blocked_episode": 0},
     {1: ComponentState.DOWN}, True),
    ("cycling-unchanged", "flapping", {"blocked_state": "down", "blocked_episode": 0}, {1: ComponentState.DOWN}, False),
    ("budget-never-by-itself", "budget", {}, {}, False),
]


@pytest.mark.parametrize(("guard", "details", "states", "woken"), [w[1:] for w in WAKES], ids=[w[0] for w in WAKES])
def test_blocked_incidents_wake_when_their_cause_clears(guard, details, states, woken) -> None:
    health = ScriptedHealth()
    for cid, state in states.items():
        health.set(cid, state)
    world = worklist.Circumstances(health, outage_open=False, plan_names=frozenset({"p"}), error_handling_enabled=True)
    assert worklist.cause_cleared(1, {"guard": guard, **details}, "p", world) is woken


@pytest.mark.parametrize(("guard", "world", "woken"), [
    ("blast_radius", {"outage_open": True}, False), ("blast_radius", {"outage_open": False}, True),
    ("no_plan", {"plan_names": frozenset()}, False), ("no_plan", {"plan_names": frozenset({"p"})}, True),
    ("observe_only", {"error_handling_enabled": False}, False), ("observe_only", {}, True),
])
def test_fleet_wide_causes(guard, world, woken) -> None:
    settings = {"outage_open": False, "plan_names": frozenset({"p"}), "error_handling_enabled": True, **world}
    circumstances = worklist.Circumstances(ScriptedHealth(), **settings)
    assert worklist.cause_cleared(1, {"guard": guard}, "p", circumstances) is woken


def test_crash_loop_settings_are_validated_at_load() -> None:
    from orchestrator.core.errors import PlanError

    assert plan_set({"p": {"steps": [{"strategy": "wait"}]}}).limits.crash_loop.base_s == 10.0
    with pytest.raises(PlanError, match="crash_loop"):
        plan_set({"p": {"steps": [{"strategy": "wait"}]}}, limits={"crash_loop": {"base": "1m", "cap": "10s"}})
    with pytest.raises(PlanError, match="crash_loop"):
        plan_set({"p": {"steps": [{"strategy": "wait"}]}}, limits={"crash_loop": {"flap_incidents": 1}})
    with pytest.raises(PlanError, match="escalate_actions"):
        plan_set({"p": {"steps": [{"strategy": "wait"}]}}, limits={"crash_loop": {"escalate_actions": 0}})
    with pytest.raises(PlanError, match="escalate_after"):
        plan_set({"p": {"steps": [{"strategy": "wait"}]}}, limits={"crash_loop": {"escalate_after": "0s"}})
    loop = plan_set({"p": {"steps": [{"strategy": "wait"}]}}).limits.crash_loop
    assert (loop.escalate_actions, loop.escalate_after_s) == (3, 600.0)
    given = plan_set({"p": {"steps": [{"strategy": "wait"}]}},
                     limits={"crash_loop": {"escalate_actions": 5, "escalate_after": "2m"}}).limits.crash_loop
    assert (given.escalate_actions, given.escalate_after_s) == (5, 120.0)


HELD = {"cycling_incidents": 3, "acted_this_cycle": True, "loop_actions": 2}
#: (id, guard input beside HELD, verdict, incident status the decision gives)
CRASH_LOOP_HOLDS = [
    ("held-just-begun", {"loop_started_at": ago(60)}, Verdict.SKIP, "blocked"),
    ("held-ten-minutes", {"loop_started_at": ago(600)}, Verdict.SKIP, "escalated"),
    ("third-action-done", {"loop_started_at": ago(60), "loop_actions": 3}, Verdict.SKIP, "escalated"),
    ("flapping-third-action-done", {"cycling_incidents": 0, "acted_this_cycle": False, "flapping": True,
                                    "loop_started_at": ago(60), "loop_actions": 3}, Verdict.SKIP, "escalated"),
    ("flapping-new-episode", {"cycling_incidents": 0, "acted_this_cycle": False, "flapping": True,
                              "loop_started_at": ago(60)}, Verdict.ACT, None),
    ("own-settings", {"loop_started_at": ago(120), "escalate_after_s": 100.0}, Verdict.SKIP, "escalated"),
]


@pytest.mark.parametrize(("given", "verdict", "status"), [c[1:] for c in CRASH_LOOP_HOLDS],
                         ids=[c[0] for c in CRASH_LOOP_HOLDS])
def test_a_crash_loop_held_by_the_flapping_guard_escalates_after_3_actions_or_10_minutes(given, verdict,
                                                                                          status) -> None:
    """Regression (issue 14, defect 4): a crash loop blocked as "flapping" never escalated (597 s dead,
    nobody told). The hold ends with a person: after 3 actions in the loop, or 10 minutes after it
    began, whichever first; until then the block says until when."""
    decision = evaluate(GuardInput(now=NOW, component="web", fleet_total=10, **{**HELD, **given}))
    assert decision.verdict is verdict
    assert (decision.status.value if decision.status else None) == status
    if status == "blocked":
        assert decision.until == given["loop_started_at"] + timedelta(seconds=600)
        assert "escalates at" in decision.reason


@pytest.mark.parametrize(("recorded", "level", "woken"), [
    ("emergency", "emergency", False),  # the operator's override still freezes automation
    ("emergency", "normal", True),  # lifted
    # Regression (the 30-minute soak, PostgreSQL): the level was read again after the guards decided
    # (a fleet probe of seconds in between); an override lifted meanwhile recorded "normal" beside the
    # override's reason, and the incident stayed held by it until the 30 s re-check
    ("normal", "normal", True),
])
def test_a_block_by_the_emergency_override_wakes_once_it_is_lifted(recorded, level, woken) -> None:
    circumstances = worklist.Circumstances(ScriptedHealth(), outage_open=False, plan_names=frozenset({"p"}),
                                           error_handling_enabled=True, degradation_level=level)
    assert worklist.cause_cleared(1, {"guard": "degradation", "blocked_level": recorded}, "p", circumstances) is woken


def test_an_incident_taken_up_from_a_block_no_longer_says_it_waits_for_the_guard(db) -> None:
    """Regression (the 30-minute SQLite soak: an incident under a restart for 30 s still said it waited for
    the operator's EMERGENCY override, lifted before the claim): being acted on clears what it waited for."""
    from orchestrator.core.states import IncidentStatus as S
    from orchestrator.db.models import Incident
    from orchestrator.incidents import status
    from orchestrator.recovery.runs import mark_recovering
    from tests.test_recovery_support import add_component, open_for

    iid = open_for(db, add_component(db, "api", "http://127.0.0.1:9/health"), "api")
    now = datetime.now(UTC)
    with db.write() as session:
        assert status.transition(session, iid, S.OPEN, S.BLOCKED, now=now, reason="operator EMERGENCY override",
                                 waiting_for="guard degradation: operator EMERGENCY override in force",
                                 waiting_until=now + timedelta(seconds=30))
    with db.write() as session:
        assert mark_recovering(session, iid, now + timedelta(seconds=5), None)
    with db.read() as session:
        row = session.get(Incident, iid)
        assert (row.status, row.waiting_for, row.waiting_until, row.status_reason) == ("recovering", None, None, None)
