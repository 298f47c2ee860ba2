"""One clock, injected everywhere a decision depends on time.

The rule: every part that decides or records something (dispatcher, checkers, judge and trackers,
recorder, recovery) takes the same injected :class:`Clock` and reads it once per decision:

- ``clock.now()``, aware UTC wall time, for everything stored or shown (``checked_at``, transitions);
- ``clock.monotonic()``, seconds, for due times, deadlines, latencies and intervals.

Only a wait on the kernel (a sleep, a socket timeout, the watchdog that cuts a socket) turns the time
left into the system's own timers: a fake clock cannot make a blocked call return sooner. Worker
processes (``run --check-processes``) cannot share an in-memory clock, so they use the system clock;
CLOCK_MONOTONIC is one clock for every process of the machine, so their readings agree with the
main process's. Tests pass a :class:`FakeClock` and move it instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current wall time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock that only moves when told to. Thread-safe; shipped for tests and plugin authors."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds

    def step_wall(self, seconds: float) -> None:
        """A step of the wall clock (an operator, NTP, a VM resumed): ``now()`` jumps, ``monotonic()``
        does not. Whatever waits must not notice (DESIGN.md invariant 7)."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
