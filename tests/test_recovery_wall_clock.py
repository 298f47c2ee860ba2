"""The recovery loop's waits run on the monotonic clock: a backoff written as ``next_attempt_at`` ends
on time although the wall clock stepped back an hour (invariant 7; issue 14, defect 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.core.states import ComponentState
from orchestrator.recovery.coordinator import RecoveryCoordinator
from orchestrator.resilience.deadlines import WallDeadlines
from tests import test_recovery_support as rs
from tests.servers import LoopbackHTTPServer, wait_for
from tests.test_recovery_support import stubs_fixture  # noqa: F401 - the `stubs` fixture
from tests.test_timer_clock import SteppedClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_wall_deadlines_follow_the_monotonic_clock() -> None:
    waits = WallDeadlines()
    waits.set(1, T0 + timedelta(seconds=5), now=T0, mono=100.0)
    waits.set(2, T0 + timedelta(seconds=50), now=T0, mono=100.0)
    stepped_back = T0 - timedelta(hours=1) + timedelta(seconds=6)  # 6 s later, the wall an hour behind
    assert waits.horizon(stepped_back, 106.0) == T0 + timedelta(seconds=5)  # 1 is found, 2 is not
    assert waits.waiting(106.0) == {2: T0 + timedelta(seconds=50)}
    stepped_on = T0 + timedelta(hours=1, seconds=7)  # 7 s later, the wall an hour ahead: 2 still waits
    assert waits.horizon(stepped_on, 107.0) == stepped_on and set(waits.waiting(107.0)) == {2}
    waits.expire(107.0)
    assert waits.horizon(T0, 107.0) == T0
    waits.set(2, None, now=T0, mono=107.0)
    assert waits.waiting(107.0) == {}


def test_a_backoff_ends_on_time_after_the_wall_clock_steps_back(db, stubs: rs.Stubs) -> None:
    stubs.make("svcctl", exit_code=1)  # the restart fails: the next attempt waits its backoff
    plans = rs.plan_set({"p": {"steps": [{"strategy": "restart", "params": {"command": ["svcctl", "{component.name}"]},
                                       "attempts": 3, "backoff": {"base": "1s", "cap": "1s"}}]}})
    health, clock = rs.ScriptedHealth(), SteppedClock()
    with LoopbackHTTPServer("500") as failing:
        cid = rs.add_component(db, "web", failing.url, plans=plans)
        health.set(cid, ComponentState.DOWN)
        coordinator = RecoveryCoordinator(db, plans, health=health, clock=clock, settle_s=0.0, tick_s=0.05)
        coordinator.start()
        try:
            iid = rs.open_for(db, cid, "web")
            assert wait_for(lambda: rs.incident(db, iid).next_attempt_at is not None, 20)  # waiting for attempt 2
            clock.offset = timedelta(hours=-1)
            assert wait_for(lambda: len([r for r in rs.journal_rows(db, iid) if r.executed]) >= 2, 20)
        finally:
            coordinator.shutdown(5)
