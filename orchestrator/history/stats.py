"""Counters and histograms of the write path, kept in memory for ``/metrics``.

The recorder calls :meth:`RecorderStats.observe_batch` once per successful flush with the results it
just committed and how long the commit took: one lock and one pass over the batch, never work per
check in the check threads. Readers (the metrics collector, at scrape time) take a consistent copy
with :meth:`RecorderStats.snapshot`. Everything here starts at zero with the process, as Prometheus
counters may.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

#: check latency buckets, seconds (a check's timeout is 2 s by default; the last ones catch hangs)
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: how late a check started against its schedule, seconds (healthy: well under 50 ms)
LATENESS_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: one batched database commit, seconds
DB_WRITE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Result(Protocol):
    ok: bool
    latency_ms: float


class _Item(Protocol):
    """What the recorder hands over: history.recorder.ResultItem."""

    component_id: int
    result: _Result
    lateness_ms: float | None


@dataclass
class Histogram:
    """Cumulative-at-read fixed buckets: ``counts[i]`` observations ≤ ``bounds[i]``, the last is +Inf."""

    bounds: Sequence[float]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``[("0.005", 3), ..., ("+Inf", n)]``, the shape prometheus_client's HistogramMetricFamily takes."""
        out, running = [], 0
        for bound, count in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out

    def copy(self) -> Histogram:
        return Histogram(self.bounds, list(self.counts), self.total, self.n)


@dataclass(frozen=True)
class StatsSnapshot:
    """A consistent copy for one scrape."""

    checks: dict[tuple[int, str], int]  # (component id, "ok" | "failed") → count
    check_latency_s: Histogram
    check_lateness_s: Histogram
    db_write_s: Histogram
    batches: int


class RecorderStats:
    """What the recorder has written since the process started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: dict[tuple[int, str], int] = {}
        self._latency = Histogram(LATENCY_BUCKETS_S)
        self._lateness = Histogram(LATENESS_BUCKETS_S)
        self._db_write = Histogram(DB_WRITE_BUCKETS_S)
        self._by_component: dict[int, Histogram] = {}  # component id → its check latency (LATENCY_BUCKETS_S)
        self._batches = 0

    def observe_batch(self, items: Iterable[_Item], *, write_s: float | None = None) -> None:
        """Count one committed batch of results; ``write_s`` is how long its transaction took."""
        with self._lock:
            checks = self._checks
            for item in items:
                key = (item.component_id, "ok" if item.result.ok else "failed")
                checks[key] = checks.get(key, 0) + 1
                latency_s = item.result.latency_ms / 1000.0
                self._latency.observe(latency_s)
                mine = self._by_component.get(item.component_id)
                if mine is None:
                    mine = self._by_component[item.component_id] = Histogram(LATENCY_BUCKETS_S)
                mine.observe(latency_s)
                if item.lateness_ms is not None:
                    self._lateness.observe(item.lateness_ms / 1000.0)
            if write_s is not None:
                self._db_write.observe(write_s)
            self._batches += 1

    @property
    def batches(self) -> int:
        """Batches counted so far: it moves whenever the recorder has written something."""
        return self._batches

    def component_latency(self) -> dict[int, Histogram]:
        """Each component's check latency since the process started (copies; read only when /metrics
        serves per-component histograms, so a plain snapshot never copies one histogram per component)."""
        with self._lock:
            return {cid: hist.copy() for cid, hist in self._by_component.items()}

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(dict(self._checks), self._latency.copy(), self._lateness.copy(),
                                 self._db_write.copy(), self._batches)
