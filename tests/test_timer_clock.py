"""The timer runs on the monotonic clock: a wall-clock step of ±1 h changes nothing but timestamps
(invariant 7; issue 14, defect 6: after a backward step no check and no heartbeat ran for minutes)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from orchestrator.health.scheduler import Timer
from tests.daemon_helpers import poll


class SteppedClock:
    """Real monotonic time; wall time the real one plus an offset the test steps."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        return time.monotonic()


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.n += 1


def _keeps_running(counter: Counter, runs: int = 3) -> None:
    start = counter.n
    poll(lambda: counter.n >= start + runs, timeout_s=15)


def test_wall_clock_steps_do_not_stop_or_delay_the_timers_jobs() -> None:
    clock = SteppedClock()
    timer = Timer(clock=clock)
    before, after = Counter(), Counter()
    timer.add_periodic("before", before, 0.1)
    timer.start()
    try:
        _keeps_running(before)
        clock.offset = timedelta(hours=1)  # the wall clock jumps forward an hour
        timer.add_periodic("after", after, 0.1)  # a job added now is due now, not in an hour
        _keeps_running(after)
        _keeps_running(before)
        clock.offset = timedelta(hours=-1)  # and back, an hour behind the real time
        _keeps_running(before)
        _keeps_running(after)
        timer.add_periodic("late", late := Counter(), 0.1, first_delay_s=0.2)
        _keeps_running(late)
    finally:
        timer.shutdown(wait=True)
