"""Dispatch: every component's next due time in one heap, popped in batches by a timer tick.

The :class:`Dispatcher` owns the due times (monotonic seconds of the injected clock). APScheduler
calls :meth:`Dispatcher.tick` every ``DISPATCH_TICK_S``; each tick pops what is due and hands it to
the check lanes (:mod:`orchestrator.health.lanes` in this process, :mod:`orchestrator.health.procs`
in worker processes). The judge calls :meth:`Dispatcher.done` with the delay its tracker wants, which
puts the component back in the heap. The rules:

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

#: How often the timer pops due checks: the worst lateness it adds (a retry after a first failure
#: waits for the next tick too, so detection pays it), for 20 wake-ups a second (~1% of a core).
DISPATCH_TICK_S = 0.05

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
        """Called once per tick: checks whose runner died (never finished); the tick re-dispatches them."""


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
        self._shedding: Shedding | None = None
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

    # -- the tick --------------------------------------------------------------------------------
    def tick(self) -> int:
        """Pop every due check and hand them to the lanes in one batch; returns how many."""
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
        entry.version += 1
        entry.due = due
        heapq.heappush(self._heap, (due, next(self._seq), entry.cid, entry.version))
