"""Check lanes in this process: fixed sets of threads looping over a queue of due checks.

Two lanes: ``fast`` for checks whose last run answered, ``slow`` for those whose last run timed out
(each holds a thread for its whole timeout). No future or executor bookkeeping per check: a thread
takes a :class:`Due`, runs it, hands the result to the sink, takes the next.

A lane sizes itself by Little's law: the threads it needs are its check rate times the mean wall
time of a check (both smoothed), with headroom. It adds threads (up to its cap) only while checks wait
with none free *and* that size says more are needed, so it follows a fleet that grows while running,
but does not add threads just because the process is short of CPU: more runnable threads would only
fight over the interpreter lock and make every check slower. So the fast lane also stops growing
while this process already uses most of a core (``CPU_BUSY``): one interpreter runs about one core of
Python, and beyond that the answer is more processes (``run --check-processes``), not threads.
On a machine shared with other work a process may never reach that share, so growth also has to
pay off: a lane that added threads without finishing at least ``PLATEAU_GAIN`` more checks per
second stops growing for ``PLATEAU_HOLD_S`` (N=10,000 on a loaded machine: 4 threads per worker
cost 1,029 us of CPU per check, 32 threads 1,411 us).

A check that hangs before it is known to hang (its first run, or an endpoint that just started
hanging) runs in the fast lane and holds a thread for its whole timeout. So a fast-lane thread whose
check has run ``STUCK_FACTOR`` times the lane's usual check time (at least ``STUCK_AFTER_S``) is
*stuck*: the lane starts a replacement at once (no growth rule applies: it restores capacity, it
does not add any), at most ``MAX_REPLACEMENTS`` at a time, and the stuck thread retires when its
check ends. 1,000 endpoints starting to hang at once then cost threads, not the healthy checks'
cadence.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable

from orchestrator.core.check_result import CheckResult
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.health.checkers import get_checker
from orchestrator.health.dispatch import Due

log = logging.getLogger(__name__)

#: Threads a lane starts with, and the most it grows to (a hanging check holds one for its timeout).
#: The fast lane's cap is low: on loopback or a LAN a check is mostly CPU, and past a few dozen
#: threads they only queue for the interpreter lock (a 128-thread worker did no more checks/s than a
#: 16-thread one, N=10,000); endpoints far away (100 ms) need more: ``run --workers``.
FAST_MIN_THREADS = 4
FAST_MAX_THREADS = 32
SLOW_MIN_THREADS = 2
SLOW_MAX_THREADS = 256
#: Threads one growth adds to a lane at most (it doubles below that): growth follows a backlog, it does
#: not explode on a burst.
GROW_STEP = 16
#: Threads kept beyond Little's law (rate x mean check time), as a factor.
HEADROOM = 2.0
#: A growth must raise the checks finished per second by this factor, or the lane holds its size
#: for PLATEAU_HOLD_S seconds (load changes; the lane tries again then).
PLATEAU_GAIN = 1.1
PLATEAU_HOLD_S = 30.0
#: Seconds a growth is given to show its effect before the next one.
GROW_SETTLE_S = 2.0
#: Share of one core this process may use before the fast lane stops adding threads.
CPU_BUSY = 0.8
#: A fast-lane check running this many times the lane's usual check time, and at least
#: STUCK_AFTER_S, holds a stuck thread, which is replaced (at most MAX_REPLACEMENTS at once).
STUCK_FACTOR = 20.0
STUCK_AFTER_S = 0.1
MAX_REPLACEMENTS = 256
#: Weight of the newest check in the smoothed check time, and of the newest second in the rate.
SMOOTHING = 0.1
RATE_SMOOTHING = 0.5

#: ``sink(due, result, lateness_ms)``: where a finished check goes (the judge, or a worker's sender).
Sink = Callable[[Due, CheckResult, float], None]


def run_due(due: Due, clock: Clock) -> tuple[CheckResult, float]:
    """Run one due check; returns the result and how late it started, in ms. Never raises."""
    lateness_ms = max(0.0, (clock.monotonic() - due.expected) * 1000.0)
    return get_checker(due.spec.kind).check(due.spec, timeout_s=due.timeout_s, clock=clock), lateness_ms


class Lane:
    """One queue and the threads that loop over it."""

    def __init__(self, name: str, sink: Sink, clock: Clock, *, min_threads: int, max_threads: int,
                 io_bound: bool = False) -> None:
        """``io_bound``: its checks mostly wait (the slow lane's hang until their timeout), so growth
        needs no proof that it paid: Little's law alone sizes it."""
        self.name = name
        self.io_bound = io_bound
        self.sink = sink
        self.clock = clock
        self.min_threads, self.max_threads = min_threads, max(min_threads, max_threads)
        self._queue: queue.SimpleQueue[Due | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()
        self._stopping = False
        self._rate = 0.0  # checks per second put in this lane, smoothed
        self._check_s = 0.0  # mean wall time of one check, smoothed (the fast lane's leaves hangs out)
        self._occupied_s = 0.0  # mean time a check holds a thread (until replaced, if it got stuck), smoothed
        self._counted = 0
        self._finished = 0  # checks finished since _rate_since
        self._done_rate = 0.0  # checks finished per second, over the last second or so
        self._rate_since = clock.monotonic()
        self._grew: tuple[float, float] | None = None  # (when, finished per second before) of the last growth
        self._hold_until = 0.0
        self._running: dict[int, float] = {}  # thread ident -> when its current check started (monotonic)
        self._replaced: set[int] = set()  # stuck threads already replaced: they retire when their check ends
        self._named = 0

    @property
    def threads(self) -> int:
        """Threads serving the lane (stuck ones already replaced not counted)."""
        return len(self._threads) - len(self._replaced)

    @property
    def stuck(self) -> int:
        """Threads held by a check that hangs, replaced and retiring when it ends."""
        return len(self._replaced)

    def put(self, due: Due) -> None:
        self._queue.put(due)
        self._counted += 1

    def needed(self) -> int:
        """Threads this lane needs by Little's law, with headroom: the rate times how long a check
        holds a thread (a hang in the fast lane holds it until it is found stuck and replaced)."""
        return math.ceil(self._rate * self._occupied_s * HEADROOM) + 1

    def stuck_after_s(self) -> float:
        """How long a fast-lane check runs before its thread counts as stuck."""
        return max(STUCK_AFTER_S, STUCK_FACTOR * self._check_s)

    def grow(self, cpu_busy: bool = False) -> None:
        """Add threads while checks wait with none free and the lane needs more (once per tick);
        with ``cpu_busy`` only up to its minimum."""
        now = self.clock.monotonic()
        elapsed = now - self._rate_since
        if elapsed >= 1.0:
            latest = self._counted / elapsed
            self._rate = latest if not self._rate else self._rate + RATE_SMOOTHING * (latest - self._rate)
            self._done_rate = self._finished / elapsed
            self._counted, self._finished, self._rate_since = 0, 0, now
        with self._lock:
            if not self.io_bound:
                self._replace_stuck(now)
            serving = len(self._threads) - len(self._replaced)
            waiting = self._queue.qsize()
            idle = len(self._threads) - self._busy
            target = self.min_threads if cpu_busy else max(self.min_threads, self.needed())
            want = min(GROW_STEP, max(1, serving), waiting - idle, target - serving)
            if want > 0 and serving >= self.min_threads and not self.io_bound and not self._growth_pays(now):
                want = 0
            want = max(want, self.min_threads - serving)
            want = min(want, self.max_threads - serving)
            if want > 0 and serving >= self.min_threads:
                self._grew = (now, self._done_rate)
            for _ in range(max(0, want)):
                self._start_thread()

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._loop, name=f"check-{self.name}-{self._named}", daemon=True)
        self._named += 1
        self._threads.append(thread)
        thread.start()

    def _replace_stuck(self, now: float) -> None:
        """Start a thread for each newly stuck one (with the lane's lock held)."""
        limit = self.stuck_after_s()
        for ident, started in list(self._running.items()):
            if len(self._replaced) >= MAX_REPLACEMENTS:
                return
            if now - started > limit and ident not in self._replaced:
                self._replaced.add(ident)
                self._start_thread()

    def _growth_pays(self, now: float) -> bool:
        """Whether to grow now: not on hold, the last growth had time to show, and it paid off."""
        if now < self._hold_until:
            return False
        if self._grew is None:
            return True
        when, before = self._grew
        if now - when < GROW_SETTLE_S:
            return False
        if self._done_rate < before * PLATEAU_GAIN:
            self._hold_until, self._grew = now + PLATEAU_HOLD_S, None
            return False
        return True

    def _loop(self) -> None:
        get, sink, clock, lock, running = self._queue.get, self.sink, self.clock, self._lock, self._running
        ident, io_bound = threading.get_ident(), self.io_bound
        while True:
            due = get()
            if due is None or self._stopping:
                return
            with lock:
                self._busy += 1
                running[ident] = clock.monotonic()
            try:
                result, lateness_ms = run_due(due, clock)
                took_s = result.latency_ms / 1000.0
                if io_bound or not result.timed_out:  # the fast lane's usual time leaves hangs out
                    self._check_s += SMOOTHING * (took_s - self._check_s)
                held_s = took_s if io_bound else min(took_s, self.stuck_after_s())
                self._occupied_s += SMOOTHING * (held_s - self._occupied_s)
                sink(due, result, lateness_ms)
            except Exception:  # the sink's bug must not end the thread
                log.exception("check lane failed component_id=%s", due.component_id)
            finally:
                with lock:
                    self._busy -= 1
                    self._finished += 1
                    running.pop(ident, None)
                    retire = ident in self._replaced
                    if retire:  # stuck, and replaced meanwhile: its replacement serves on
                        self._replaced.discard(ident)
                        self._threads.remove(threading.current_thread())
            if retire:
                return

    def stop(self, deadline: float) -> None:
        """Drop the checks still queued (they never started) and wait, until monotonic ``deadline``,
        for the running ones, each bounded by its own timeout."""
        self._stopping = True
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(max(0.0, deadline - SYSTEM_CLOCK.monotonic()))


class ThreadLanes:
    """The fast and slow lanes of one process; the dispatcher's :class:`~.dispatch.Lanes`."""

    def __init__(self, sink: Sink, *, clock: Clock = SYSTEM_CLOCK, max_threads: int | None = None) -> None:
        self.clock = clock
        self._cpu = (time.process_time(), time.monotonic())
        self._cpu_busy = False
        fast_max = max_threads or FAST_MAX_THREADS
        self.fast = Lane("fast", sink, clock, min_threads=min(FAST_MIN_THREADS, fast_max), max_threads=fast_max)
        self.slow = Lane("slow", sink, clock, min_threads=SLOW_MIN_THREADS, max_threads=SLOW_MAX_THREADS,
                         io_bound=True)

    def submit(self, batch: list[Due]) -> None:
        fast_put, slow_put = self.fast.put, self.slow.put
        for due in batch:
            (slow_put if due.slow else fast_put)(due)
        self.fast.grow(self._busy())
        self.slow.grow()

    def _busy(self) -> bool:
        """Whether this process used more than CPU_BUSY of a core over the last second or so."""
        cpu, wall = time.process_time(), time.monotonic()
        if wall - self._cpu[1] >= 1.0:
            self._cpu_busy = (cpu - self._cpu[0]) / (wall - self._cpu[1]) > CPU_BUSY
            self._cpu = (cpu, wall)
        return self._cpu_busy

    def poll(self) -> list[Due]:
        return []  # threads of this process do not die: a check never raises

    def threads(self) -> int:
        return self.fast.threads + self.slow.threads

    def stop(self, timeout_s: float) -> None:
        deadline = SYSTEM_CLOCK.monotonic() + timeout_s
        self.fast.stop(deadline)
        self.slow.stop(deadline)
