"""Idle means idle: the daemon's loops wake on work, not at a fixed rate (issue 20, target 2).

Each loop is shown to do its work promptly when work arrives, and to stay asleep when none does:
wake-ups are counted, no timing is asserted beyond "within a generous deadline".
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from orchestrator.core.check_result import CheckResult
from orchestrator.core.clock import SYSTEM_CLOCK, FakeClock
from orchestrator.core.states import ComponentState
from orchestrator.db.models import Incident
from orchestrator.degradation.policy import DegradationPolicy
from orchestrator.degradation.service import DegradationService
from orchestrator.degradation.signals import FleetSignals
from orchestrator.health.dispatch import IDLE_WAIT_S, MIN_GAP_S, Dispatcher
from orchestrator.health.judge import Install, Judge
from orchestrator.health.live import LiveView
from orchestrator.health.tracker import TrackerConfig
from orchestrator.history.recorder import LiveState, Recorder, TransitionItem
from orchestrator.recovery.coordinator import RecoveryCoordinator
from tests.daemon_helpers import poll
from tests.test_dispatch import SPEC, RecordingLanes
from tests.test_recovery_support import ScriptedHealth, add_component

UP, DOWN = ComponentState.UP, ComponentState.DOWN
#: a loop that polled at a fixed rate would wake this often per second (the old ticks were 20 Hz)
OLD_RATE_HZ = 20


def _idle_for(seconds: float) -> None:
    """A deliberate idle spell: what is measured is what the loops do while nothing happens."""
    threading.Event().wait(seconds)


# -- the dispatcher ---------------------------------------------------------------------------------
def test_the_dispatcher_sleeps_until_the_next_due_time_never_less_than_the_gap() -> None:
    clock = FakeClock()
    d = Dispatcher(RecordingLanes(), clock=clock, rng=random.Random(1))
    ticked = clock.monotonic()
    assert d.wait_s(ticked) == IDLE_WAIT_S  # nothing to do: the safety net only, not a 50 ms tick
    d.add(1, SPEC, interval_s=10.0, timeout_s=1.0, first_delay_s=0.4)
    assert d.wait_s(ticked) == pytest.approx(0.4)  # until the next due time
    d.add(2, SPEC, interval_s=10.0, timeout_s=1.0, first_delay_s=0.01)
    assert d.wait_s(ticked) == pytest.approx(MIN_GAP_S)  # due sooner than the gap: batched with what follows
    d.add(3, SPEC, interval_s=10.0, timeout_s=1.0, first_delay_s=5.0)
    clock.advance(0.5)
    assert d.tick() == 2
    assert d.wait_s(clock.monotonic()) == IDLE_WAIT_S  # 4.5 s ahead: it sleeps its longest


def test_the_dispatch_thread_wakes_for_a_pushed_retry_and_not_in_between() -> None:
    lanes = RecordingLanes()
    d = Dispatcher(lanes, clock=SYSTEM_CLOCK, rng=random.Random(1))
    stop = threading.Event()
    thread = threading.Thread(target=d.run, args=(stop,), daemon=True)
    thread.start()
    try:
        d.add(1, SPEC, interval_s=60.0, timeout_s=1.0, first_delay_s=0.0)  # due now: wakes the sleeping thread
        poll(lambda: lanes.ids() == [1], timeout_s=10)
        ticks = d.ticks
        d.done(1, 0.3)  # a retry after a first failure, due before the thread's next wake-up
        poll(lambda: lanes.ids() == [1, 1], timeout_s=10)
        # the retry's own tick, and at most one safety tick on a slow machine: never a tick every 50 ms
        assert d.ticks - ticks <= 2, d.ticks - ticks
        d.done(1, None)  # the normal cadence: a minute from now
        ticks = d.ticks
        _idle_for(0.5)
        assert d.ticks - ticks <= 1, d.ticks - ticks  # at most the 1 s safety net, not 10 ticks
    finally:
        stop.set()
        d.wake()
        thread.join(5)
    assert not thread.is_alive()


# -- the judge --------------------------------------------------------------------------------------
class _Recorded:
    """The recorder's add_batch, counted (the judge's only output here)."""

    def __init__(self) -> None:
        self.results = 0

    def add_batch(self, results, transitions) -> None:
        self.results += len(results)

    def forget(self, component_id: int) -> None:
        pass


def _result(ok: bool) -> CheckResult:
    return CheckResult(ok=ok, latency_ms=1.0, checked_at=datetime.now(UTC), error=None if ok else "refused")


def test_the_judge_sleeps_until_a_result_arrives_and_judges_a_failure_at_once() -> None:
    recorded = _Recorded()
    d = Dispatcher(RecordingLanes(), clock=SYSTEM_CLOCK)
    judge = Judge(recorded, d, LiveView(), clock=SYSTEM_CLOCK)  # type: ignore[arg-type]
    judge.send(Install(1, "api", SPEC, TrackerConfig(interval_s=10.0), 1.0, "normal",
                       LiveState(UP, None, 0, 0, 0)))
    judge.start()
    try:
        poll(lambda: judge.wakeups >= 1, timeout_s=10)  # the install
        woke = judge.wakeups
        _idle_for(0.5)
        assert judge.wakeups == woke  # nothing arrived: no wake-up (a 20 Hz period woke it 10 times)
        judge.submit(1, _result(True), 0.0)
        poll(lambda: recorded.results == 1, timeout_s=10)  # a passing result still gets judged
        judge.submit(1, _result(False), 0.0)
        poll(lambda: recorded.results == 2, timeout_s=10)
        assert judge.wakeups - woke <= 3, judge.wakeups - woke  # one per arrival (and a stray one at most)
    finally:
        judge.stop(5)


# -- the recovery loop ------------------------------------------------------------------------------
def test_a_transition_the_recorder_commits_wakes_the_recovery_loop(db) -> None:
    """The loop's own poll is a minute here: only the recorder's wake-up can bring the new incident to it
    in time. With no plan loaded, the loop's run blocks it ("no plan"), which is what is waited for."""
    cid = add_component(db, "api", "http://127.0.0.1:9/", plan=None)
    recorder = Recorder(db, flush_interval_s=0.1)
    coordinator = RecoveryCoordinator(db, None, health=ScriptedHealth(), tick_s=60.0, settle_s=0.0)
    recorder.on_transitions(coordinator.wake)
    recorder.start()
    coordinator.start()
    try:
        poll(lambda: coordinator._ticks >= 1, timeout_s=10)  # its first look found nothing
        recorder.add_transition(TransitionItem(cid, "api", UP, DOWN, datetime.now(UTC), "refused", None))

        def status() -> str | None:
            with db.read() as session:
                return session.scalar(select(Incident.status).where(Incident.component_id == cid))

        poll(lambda: status() == "blocked", timeout_s=20)
    finally:
        coordinator.shutdown(5)
        recorder.stop(5)


def test_the_recovery_loop_sleeps_until_the_next_wait_it_wrote(db) -> None:
    clock = FakeClock()
    coordinator = RecoveryCoordinator(db, None, health=ScriptedHealth(), clock=clock, tick_s=60.0)
    try:
        assert coordinator.sleep_s() == 60.0
        now, mono = clock.now(), clock.monotonic()
        coordinator._waits.set(7, now - timedelta(seconds=1), now=now, mono=mono)  # ended already
        coordinator._waits.set(8, now + timedelta(seconds=3), now=now, mono=mono)
        coordinator._waits.set(9, now + timedelta(seconds=30), now=now, mono=mono)
        assert coordinator.sleep_s() == pytest.approx(3.0)  # the wait for incident 8 ends in 3 s (7's has ended)
    finally:
        coordinator.shutdown(1)


# -- the degradation evaluator ----------------------------------------------------------------------
class _CountingLive(LiveView):
    def __init__(self) -> None:
        super().__init__()
        self.looks: Counter[str] = Counter()

    def counts(self):
        self.looks["counts"] += 1
        return super().counts()


def test_the_live_view_wakes_the_degradation_evaluator_which_never_polls_it(db) -> None:
    live = _CountingLive()
    live.set(1, UP, 0)
    policy = DegradationPolicy.model_validate({"evaluate_every": 60})
    service = DegradationService(db, live, FleetSignals(SYSTEM_CLOCK), policy=policy)
    service.start()  # one evaluation at start, then the next in a minute unless woken
    try:
        evaluations = service.evaluations
        _idle_for(0.3)
        assert service.evaluations == evaluations
        live.set(1, DOWN, 0)  # a state change: evaluated at once, not at the next minute
        poll(lambda: service.evaluations > evaluations, timeout_s=10)
        assert live.looks["counts"] == 0  # woken by the view, never by looking at its counts every 50 ms
    finally:
        service.stop()
