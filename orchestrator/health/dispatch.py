"""Dispatch: every component's next due time in one heap, popped in batches when something is due.

The :class:`Dispatcher` owns the due times (monotonic seconds of the injected clock). Its thread
(:meth:`Dispatcher.run`) sleeps until the heap's next due time, at least ``MIN_GAP_S`` after its
previous tick (so a fleet with checks due every millisecond is still dispatched in batches, ~20 a
second), and is woken early only when a due time earlier than the one it sleeps until is pushed (a
retry after a first failure, a component added) or the lanes lost checks (a worker process died).
An idle fleet costs one wake-up per due check, not 20 a second. Each tick pops what is due and hands
it to the check lanes (:mod:`orchestrator.health.lanes` in this process,
:mod:`orchestrator.health.procs` in worker processes). The judge calls :meth:`Dispatcher.done` with
the delay its tracker wants, which puts the component back in the heap. The rules:

1. Never two runs of one component at once: a component is out of the heap from hand-out to
   ``done()``; a due time that passed meanwhile is coalesced into one run, not a burst.
2. On the normal cadence the next due time steps from the last one (no drift); a component that fell
   behind runs once, at the latest step it missed, so its recorded lateness stays truthful.
3. A check whose last run timed out goes to the slow lane, so hanging endpoints never hold the
   threads that healthy checks need.
4. Stretching (the orchestrator's own overload, :mod:`orchestrator.degradation.actions`) is a
   predicate set at runtime: :meth:`set_shedding`. It may only lengthen a passing component's next
   interval, by at most ``MAX_STRETCH``; it never skips a check (invariant 6, never silent: a check
   not run is a failure not seen).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.degradation.actions import MAX_STRETCH

log = logging.getLogger(__name__)

#: The shortest time between two ticks of the dispatch thread: the most lateness batching adds (a check
#: due right after a tick waits for the next one), and at most 20 ticks a second however busy. A check
#: due after a quiet spell (a retry after a first failure, on an idle fleet) is dispatched at its due time.
MIN_GAP_S = 0.05
#: The longest the dispatch thread sleeps when nothing is due sooner: a safety net only (every push of
#: an earlier due time and every loss of the lanes wakes it), and how often the lanes are polled at least.
IDLE_WAIT_S = 1.0

#: A component added while running is first due within this many seconds (or its interval, if
#: shorter), spread so that adding 1,000 at once is a short burst, not a wall of checks.
ADDED_SPREAD_S = 2.0

#: ``shedding(component_id, criticality) -> multiplier``: 1.0 checks at the normal interval, 2.0 at
#: twice it (clamped to 1..MAX_STRETCH). Called when a passing run is rescheduled: keep it a lookup.
Shedding = Callable[[int, str], float]


@dataclass(frozen=True, slots=True)
class Due:
    """One check handed to a lane: what to run, and what the result must carry back."""

    component_id: int
    spec: CheckSpec
    timeout_s: float
    expected: float  # monotonic due time, for lateness
    slow: bool  # its last run timed out: run it in the slow lane


class Lanes(Protocol):
    """Where due checks go; results come back through the judge."""

    def submit(self, batch: list[Due]) -> None:
        """Start every check of ``batch`` soon; never blocks on a check."""

    def poll(self) -> list[Due]:
        """Called once per tick (at least every ``IDLE_WAIT_S``): checks whose runner died (never
        finished); the tick re-dispatches them. Lanes that notice a death themselves call the
        dispatcher's :meth:`~Dispatcher.wake` so that it comes at once."""


class _Entry:
    __slots__ = ("cid", "spec", "interval_s", "timeout_s", "criticality", "due", "running", "slow", "version")

    def __init__(self, cid: int, spec: CheckSpec, interval_s: float, timeout_s: float, criticality: str) -> None:
        self.cid, self.spec = cid, spec
        self.interval_s, self.timeout_s, self.criticality = interval_s, timeout_s, criticality
        self.due = 0.0
        self.running = False
        self.slow = False
        self.version = 0  # bumped whenever the entry is pushed: older heap items are stale


class Dispatcher:
    """The heap of due checks. Thread-safe: the tick, the judge and the registry sync call it."""

    def __init__(self, lanes: Lanes, *, clock: Clock = SYSTEM_CLOCK, rng: random.Random | None = None) -> None:
        self.lanes = lanes
        self.clock = clock
        self.rng = rng or random.Random()
        self._entries: dict[int, _Entry] = {}
        self._heap: list[tuple[float, int, int, int]] = []  # (due, seq, component id, entry version)
        self._seq = itertools.count()
        self._lock = threading.Lock()
        #: the dispatch thread waits on it; notified when a push is due before ``_sleeping_until``
        self._cond = threading.Condition(self._lock)
        #: monotonic time the dispatch thread sleeps until (-inf while it is awake: nothing to notify)
        self._sleeping_until = -math.inf
        self._woken = False
        self._shedding: Shedding | None = None
        #: ticks run (the thread's wake-ups that looked at the heap)
        self.ticks = 0
        #: due times that passed while the previous run still went on, coalesced into one run
        self.coalesced = 0
        #: checks handed to the lanes
        self.dispatched = 0

    # -- registry (through the judge) ---------------------------------------------------------------
    def add(self, cid: int, spec: CheckSpec, *, interval_s: float, timeout_s: float,
            criticality: str = "normal", first_delay_s: float | None = None, soon: bool = False) -> None:
        """Schedule a new component, or apply a changed definition to a known one.

        A new one is first due after ``first_delay_s`` (default: a random point of its interval, so a
        restart does not fire every check at once; with ``soon``, one added while running, a random
        point of the next ``ADDED_SPREAD_S``). A changed one keeps its due time when its interval
        is the same, and is due one new interval from now otherwise; a run in flight finishes first.
        """
        with self._lock:
            old = self._entries.get(cid)
            entry = self._entries[cid] = _Entry(cid, spec, interval_s, timeout_s, criticality)
            now = self.clock.monotonic()
            if old is None:
                spread = min(interval_s, ADDED_SPREAD_S) if soon else interval_s
                delay = self.rng.uniform(0, spread) if first_delay_s is None else first_delay_s
                self._push(entry, now + delay)
                return
            entry.running, entry.slow, entry.version = old.running, old.slow, old.version
            due = old.due if old.interval_s == interval_s else now + interval_s
            if entry.running:
                entry.due = due  # done() schedules from here
            else:
                self._push(entry, due)

    def remove(self, cid: int) -> None:
        """Forget a component; a run in flight finishes and its result is dropped by the judge."""
        with self._lock:
            self._entries.pop(cid, None)

    def __len__(self) -> int:
        return len(self._entries)

    def rate(self) -> float:
        """Checks per second the components ask for (at their normal intervals)."""
        with self._lock:
            return sum(1.0 / e.interval_s for e in self._entries.values())

    def use_lanes(self, lanes: Lanes) -> Lanes:
        """Hand due checks to ``lanes`` from the next tick on; returns the previous lanes (their checks
        in flight still finish and report)."""
        with self._lock:
            old, self.lanes = self.lanes, lanes
        return old

    # -- the judge -------------------------------------------------------------------------------
    def done(self, cid: int, delay_s: float | None, *, timed_out: bool = False) -> float | None:
        """A run of ``cid`` ended: schedule the next one and return its monotonic due time.

        ``delay_s`` None means the normal cadence (rule 2); a number is a retry or backoff delay from now.
        """
        with self._lock:
            entry = self._entries.get(cid)
            if entry is None:
                return None
            entry.running, entry.slow = False, timed_out
            now = self.clock.monotonic()
            if delay_s is None:
                step = entry.interval_s * self._factor(entry)
                due = entry.due + step
                if due <= now:  # fell behind: one run at the latest missed step
                    missed = math.floor((now - entry.due) / step)
                    self.coalesced += max(0, missed - 1)
                    due = entry.due + missed * step
            else:
                due = now + delay_s
            self._push(entry, due)
            return due

    def reschedule(self, cid: int, delay_s: float) -> None:
        """Move the next check of ``cid`` to ``delay_s`` from now (a run in flight keeps going)."""
        with self._lock:
            entry = self._entries.get(cid)
            if entry is not None and not entry.running:
                self._push(entry, self.clock.monotonic() + delay_s)

    def due_at(self, cid: int) -> float | None:
        """The monotonic due time of ``cid``'s next check (None if unknown or running)."""
        entry = self._entries.get(cid)
        return None if entry is None or entry.running else entry.due

    def set_shedding(self, fn: Shedding | None) -> None:
        """Install (or clear, with None) the shedding predicate; takes effect at the next tick."""
        self._shedding = fn

    # -- the thread ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """The dispatch thread: tick, then sleep until the next due time (see the module docstring),
        until ``stop`` is set (then call :meth:`wake`)."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # a lane's bug must not stop checking
                log.exception("dispatch tick failed")
            ticked = self.clock.monotonic()
            with self._cond:
                while not stop.is_set() and not self._woken:
                    wait = self.wait_s(ticked)
                    if wait <= 0:
                        break
                    # a wait on the kernel, in real seconds (tests on a fake clock call tick() themselves);
                    # a push due before _sleeping_until notifies, and the next due time is looked up again
                    self._sleeping_until = self.clock.monotonic() + wait
                    self._cond.wait(wait)
                    self._sleeping_until = -math.inf
                self._woken = False

    def wait_s(self, ticked: float) -> float:
        """Seconds the dispatch thread may sleep after a tick at monotonic ``ticked``: until the heap's
        next due time, no sooner than ``MIN_GAP_S`` after that tick, at most ``IDLE_WAIT_S``. Called
        with the lock held (or by tests)."""
        now = self.clock.monotonic()
        due = self._heap[0][0] if self._heap else math.inf
        return min(max(due, ticked + MIN_GAP_S), ticked + IDLE_WAIT_S) - now

    def wake(self) -> None:
        """Tick now (any thread): the lanes lost checks, or the thread must stop."""
        with self._cond:
            self._woken = True
            self._cond.notify()

    # -- the tick --------------------------------------------------------------------------------
    def tick(self) -> int:
        """Pop every due check and hand them to the lanes in one batch; returns how many."""
        self.ticks += 1
        lost = self.lanes.poll()
        now = self.clock.monotonic()
        batch: list[Due] = []
        with self._lock:
            for due in lost:  # their runner died: run them again now
                entry = self._entries.get(due.component_id)
                if entry is not None and entry.running:
                    entry.running = False
                    self._push(entry, now)
            heap = self._heap
            while heap and heap[0][0] <= now:
                _, _, cid, version = heapq.heappop(heap)
                entry = self._entries.get(cid)
                if entry is None or entry.version != version:
                    continue  # removed or moved since
                if entry.running:
                    self.coalesced += 1
                    continue
                entry.running = True
                batch.append(Due(cid, entry.spec, entry.timeout_s, entry.due, entry.slow))
        if batch:
            self.dispatched += len(batch)
            self.lanes.submit(batch)
        return len(batch)

    def _factor(self, entry: _Entry) -> float:
        """The shedding predicate's interval multiplier for ``entry``: 1.0 without one, never more than
        MAX_STRETCH whatever it says (a predicate may stretch, never blind)."""
        shedding = self._shedding
        if shedding is None:
            return 1.0
        try:
            factor = shedding(entry.cid, entry.criticality)
        except Exception:  # a bad predicate must not stop checking
            log.exception("shedding predicate failed component_id=%s", entry.cid)
            return 1.0
        return 1.0 if factor is None else min(MAX_STRETCH, max(1.0, float(factor)))

    def _push(self, entry: _Entry, due: float) -> None:
        """With the lock held: put ``entry`` in the heap at ``due``; wakes the dispatch thread only when
        it sleeps past ``due`` (a retry, a new component; the normal cadence's next run never does)."""
        entry.version += 1
        entry.due = due
        heapq.heappush(self._heap, (due, next(self._seq), entry.cid, entry.version))
        if due < self._sleeping_until:
            self._cond.notify()
