"""Lane sizing: the slow lane (hanging checks) grows by Little's law alone; the fast lane's growth must pay."""

from __future__ import annotations

from orchestrator.core.clock import FakeClock
from orchestrator.health import lanes
from orchestrator.health.lanes import Lane


def _lane(io_bound: bool, clock: FakeClock) -> Lane:
    lane = Lane("t", lambda *a: None, clock, min_threads=2, max_threads=256, io_bound=io_bound)
    lane._threads = [object()] * 2  # sized by hand: these tests look at the decision, not at threads
    lane._rate, lane._check_s = 100.0, 2.0  # 100 hanging checks/s of 2 s each: Little's law says 401
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
