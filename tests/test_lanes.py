"""Lane sizing: the slow lane (hanging checks) grows by Little's law alone; the fast lane's growth must
pay; a fast-lane thread stuck in a check that hangs is replaced at once and retires when it ends."""

from __future__ import annotations

import threading
import time

from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.clock import SYSTEM_CLOCK, FakeClock
from orchestrator.health import lanes
from orchestrator.health.dispatch import Due
from orchestrator.health.lanes import Lane
from tests.servers import LoopbackHTTPServer


def _lane(io_bound: bool, clock: FakeClock) -> Lane:
    lane = Lane("t", lambda *a: None, clock, min_threads=2, max_threads=256, io_bound=io_bound)
    lane._threads = [object()] * 2  # sized by hand: these tests look at the decision, not at threads
    lane._rate, lane._occupied_s = 100.0, 2.0  # 100 hanging checks/s of 2 s each: Little's law says 401
    lane._grew, lane._done_rate = (clock.monotonic() - 10, 50.0), 50.0  # the last growth did not pay
    for _ in range(50):
        lane._queue.put(None)  # checks waiting, no thread free
    return lane


def _would_add(lane: Lane, monkeypatch) -> int:
    started: list[object] = []
    monkeypatch.setattr(lanes.threading, "Thread", lambda **kw: started.append(kw) or _Inert())
    lane._counted, lane._rate_since = 0, lane.clock.monotonic()  # no rate update in this call
    lane.grow()
    return len(started)


class _Inert:
    def start(self) -> None:
        pass


def test_slow_lane_grows_by_littles_law_even_when_the_last_growth_did_not_pay(monkeypatch) -> None:
    clock = FakeClock()
    assert _would_add(_lane(True, clock), monkeypatch) > 0


def test_fast_lane_holds_when_the_last_growth_did_not_pay(monkeypatch) -> None:
    clock = FakeClock()
    assert _would_add(_lane(False, clock), monkeypatch) == 0


def test_checks_that_start_hanging_in_the_fast_lane_do_not_hold_the_healthy_ones_behind_them() -> None:
    """Regression: endpoints hanging before any run timed out go to the fast lane; 2 of them held
    both of its 2 threads for their whole timeout and every healthy check queued behind them."""
    finished: list[tuple[str, bool]] = []
    done = threading.Condition()

    def sink(due: Due, result, _lateness_ms: float) -> None:
        with done:
            finished.append((due.spec.url, result.timed_out))
            done.notify_all()

    lane = Lane("fast", sink, SYSTEM_CLOCK, min_threads=2, max_threads=2)
    with LoopbackHTTPServer("hang") as hanging, LoopbackHTTPServer("ok") as healthy:
        now = SYSTEM_CLOCK.monotonic()
        for i in range(2):
            lane.put(Due(i, CheckSpec(url=hanging.url), 2.0, now, slow=False))
        lane.grow()  # its 2 threads start and take the 2 hanging checks
        for i in range(20):
            lane.put(Due(10 + i, CheckSpec(url=healthy.url), 5.0, now, slow=False))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lane.grow()  # the dispatcher's tick
            with done:
                if len(finished) >= 22 or done.wait(0.05) and len(finished) >= 22:
                    break
        assert [url for url, _ in finished[:20]] == [healthy.url] * 20  # none waited for a hang
        assert sorted(timed_out for _, timed_out in finished[20:]) == [True, True]
        assert lane.threads == 2 and lane.stuck == 0 and len(lane._threads) == 2  # the stuck ones retired
    lane.stop(SYSTEM_CLOCK.monotonic() + 5)
