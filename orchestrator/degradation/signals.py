"""Fleet-wide check signals for the level rules: error rate, latency p95 and check lateness p95.

The check plane calls :meth:`FleetSignals.observe` once per check result (any thread). Results are
counted in one-second buckets with log-scaled latency histograms (about 5% resolution), so a window
query costs the same at 10 or 10,000 components and memory stays bounded. Lateness is counted for
passing checks only: a hanging endpoint's checks wait in the slow lane by design, and counting them
would make ten hanging endpoints look like an overloaded orchestrator. Nor is a component's first
check counted: at start-up the whole fleet's first round waits for the check workers to boot, and a
component just added is installed at a random point of its interval; both are late by design, and
an orchestrator shedding its checks during its own start-up would never finish it.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

from orchestrator.core.clock import SYSTEM_CLOCK, Clock

#: Seconds of buckets kept: the longest window a rule may ask about.
KEEP_S = 120
_GROWTH = 1.1  # histogram bucket width: each bucket 10% wider than the one below
_LOG_GROWTH = math.log(_GROWTH)
_MAX_BUCKET = 200  # 1.1**200 ms is far beyond any timeout


def _bucket(ms: float) -> int:
    if ms <= 1.0:
        return 0
    return min(_MAX_BUCKET, int(math.log(ms) / _LOG_GROWTH) + 1)


def _upper_ms(bucket: int) -> float:
    return _GROWTH ** bucket


class _Second:
    __slots__ = ("second", "checks", "failures", "latency", "lateness")

    def __init__(self, second: int) -> None:
        self.second, self.checks, self.failures = second, 0, 0
        self.latency: dict[int, int] = {}
        self.lateness: dict[int, int] = {}


@dataclass(frozen=True)
class Window:
    """The signals over the last ``seconds``."""

    seconds: float
    checks: int
    failures: int
    latency_p95_ms: float | None
    lateness_p95_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.checks if self.checks else None


def _p95(hists: list[dict[int, int]]) -> float | None:
    merged: dict[int, int] = {}
    for hist in hists:
        for bucket, n in hist.items():
            merged[bucket] = merged.get(bucket, 0) + n
    total = sum(merged.values())
    if not total:
        return None
    rank, seen = math.ceil(0.95 * total), 0
    for bucket in sorted(merged):
        seen += merged[bucket]
        if seen >= rank:
            return _upper_ms(bucket)
    return None  # pragma: no cover - the loop always reaches rank


class FleetSignals:
    """Thread-safe counters of recent check results."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._seconds: deque[_Second] = deque()
        self._lock = threading.Lock()
        self._seen: set[int] = set()  # components whose first check was observed

    def observe(self, ok: bool, latency_ms: float, lateness_ms: float | None,
                component_id: int | None = None) -> None:
        """Count one check result (of ``component_id``: its first one's lateness is left out)."""
        second = int(self.clock.monotonic())
        with self._lock:
            if component_id is not None and component_id not in self._seen:
                self._seen.add(component_id)
                lateness_ms = None
            seconds = self._seconds
            if not seconds or seconds[-1].second != second:
                seconds.append(_Second(second))
                while seconds and seconds[0].second <= second - KEEP_S:
                    seconds.popleft()
            cur = seconds[-1]
            cur.checks += 1
            if not ok:
                cur.failures += 1
            b = _bucket(latency_ms)
            cur.latency[b] = cur.latency.get(b, 0) + 1
            if lateness_ms is not None and ok:  # a failing check may run in the slow lane, late by design
                b = _bucket(max(lateness_ms, 0.0))
                cur.lateness[b] = cur.lateness.get(b, 0) + 1

    def window(self, seconds: float) -> Window:
        """The signals over the last ``seconds`` (the current second included)."""
        since = int(self.clock.monotonic()) - max(1, int(seconds)) + 1
        with self._lock:  # the current second's histograms change under other threads
            recent = [s for s in self._seconds if s.second >= since]
            return Window(seconds, sum(s.checks for s in recent), sum(s.failures for s in recent),
                          _p95([s.latency for s in recent]), _p95([s.lateness for s in recent]))
