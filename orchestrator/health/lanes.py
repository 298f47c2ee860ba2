"""Check lanes in this process: fixed sets of threads looping over a queue of due checks.

Two lanes: ``fast`` for checks whose last run answered, ``slow`` for those whose last run timed out
(each holds a thread for its whole timeout). A lane starts small and adds threads while checks wait
in its queue with no thread free, up to its cap, so it follows a fleet that grows while running. No
future or executor bookkeeping per check: a thread takes a :class:`Due`, runs it, hands the result to
the sink, takes the next.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.health.checkers import get_checker
from orchestrator.health.dispatch import Due
from orchestrator.health.result import CheckResult

log = logging.getLogger(__name__)

#: Threads a lane starts with, and the most it grows to (a hanging check holds one for its timeout).
FAST_MIN_THREADS = 4
FAST_MAX_THREADS = 128
SLOW_MIN_THREADS = 2
SLOW_MAX_THREADS = 256
#: Threads one tick adds to a lane at most: growth follows a backlog, it does not explode on a burst.
GROW_STEP = 16

#: ``sink(due, result, lateness_ms)``: where a finished check goes (the judge, or a worker's sender).
Sink = Callable[[Due, CheckResult, float], None]


def run_due(due: Due, clock: Clock) -> tuple[CheckResult, float]:
    """Run one due check; returns the result and how late it started, in ms. Never raises."""
    lateness_ms = max(0.0, (clock.monotonic() - due.expected) * 1000.0)
    return get_checker(due.spec.kind).check(due.spec, timeout_s=due.timeout_s, clock=clock), lateness_ms


class Lane:
    """One queue and the threads that loop over it."""

    def __init__(self, name: str, sink: Sink, clock: Clock, *, min_threads: int, max_threads: int) -> None:
        self.name = name
        self.sink = sink
        self.clock = clock
        self.min_threads, self.max_threads = min_threads, max(min_threads, max_threads)
        self._queue: queue.SimpleQueue[Due | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()
        self._stopping = False

    @property
    def threads(self) -> int:
        return len(self._threads)

    def put(self, due: Due) -> None:
        self._queue.put(due)

    def grow(self) -> None:
        """Add threads while checks wait with none free (called once per tick)."""
        with self._lock:
            waiting = self._queue.qsize()
            idle = len(self._threads) - self._busy
            want = max(self.min_threads - len(self._threads), min(GROW_STEP, waiting - idle))
            want = min(want, self.max_threads - len(self._threads))
            for _ in range(max(0, want)):
                thread = threading.Thread(target=self._loop, name=f"check-{self.name}-{len(self._threads)}",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()

    def _loop(self) -> None:
        get, sink, clock, lock = self._queue.get, self.sink, self.clock, self._lock
        while True:
            due = get()
            if due is None or self._stopping:
                return
            with lock:
                self._busy += 1
            try:
                result, lateness_ms = run_due(due, clock)
                sink(due, result, lateness_ms)
            except Exception:  # the sink's bug must not end the thread
                log.exception("check lane failed component_id=%s", due.component_id)
            finally:
                with lock:
                    self._busy -= 1

    def stop(self, deadline: float) -> None:
        """Drop the checks still queued (they never started) and wait, until monotonic ``deadline``,
        for the running ones, each bounded by its own timeout."""
        self._stopping = True
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(max(0.0, deadline - SYSTEM_CLOCK.monotonic()))


class ThreadLanes:
    """The fast and slow lanes of one process; the dispatcher's :class:`~.dispatch.Lanes`."""

    def __init__(self, sink: Sink, *, clock: Clock = SYSTEM_CLOCK, max_threads: int | None = None) -> None:
        fast_max = max_threads or FAST_MAX_THREADS
        self.fast = Lane("fast", sink, clock, min_threads=min(FAST_MIN_THREADS, fast_max), max_threads=fast_max)
        self.slow = Lane("slow", sink, clock, min_threads=SLOW_MIN_THREADS, max_threads=SLOW_MAX_THREADS)

    def submit(self, batch: list[Due]) -> None:
        fast_put, slow_put = self.fast.put, self.slow.put
        for due in batch:
            (slow_put if due.slow else fast_put)(due)
        self.fast.grow()
        self.slow.grow()

    def poll(self) -> list[Due]:
        return []  # threads of this process do not die: a check never raises

    def threads(self) -> int:
        return self.fast.threads + self.slow.threads

    def stop(self, timeout_s: float) -> None:
        deadline = SYSTEM_CLOCK.monotonic() + timeout_s
        self.fast.stop(deadline)
        self.slow.stop(deadline)
