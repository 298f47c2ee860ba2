"""The report's figures over time: latency from the rollups, MTTR by period, strategy outcomes.

Plain frozen records; :mod:`orchestrator.reports.charts` draws them as SVG and the Markdown report
prints the same records as tables.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.db.models import CheckRollup
from orchestrator.reports.history import IncidentReport

#: bucket sizes to choose from, seconds, smallest first
NICE_BUCKETS_S = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)
#: at most this many points on the latency chart, bars on the MTTR chart
MAX_LATENCY_POINTS = 96
MAX_MTTR_BUCKETS = 30


@dataclass(frozen=True)
class LatencyPoint:
    """Checks in one bucket and their check-weighted latency (p50/p95 means of per-minute values)."""

    start: datetime
    checks: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


@dataclass(frozen=True)
class MttrPoint:
    """Incidents resolved in one bucket and their mean time to recover."""

    start: datetime
    resolved: int
    mttr_s: float | None


@dataclass(frozen=True)
class StrategyFigures:
    """How one strategy's executed attempts went."""

    strategy: str
    executed: int
    succeeded: int
    failed: int
    verified: int


@dataclass(frozen=True)
class Figures:
    """Everything the report draws."""

    bucket_s: int
    latency: tuple[LatencyPoint, ...]
    mttr_bucket_s: int
    mttr: tuple[MttrPoint, ...]
    strategies: tuple[StrategyFigures, ...]


def bucket_size(window_s: float, max_buckets: int) -> int:
    """The smallest nice bucket that splits the window into at most ``max_buckets``."""
    return next((b for b in NICE_BUCKETS_S if window_s / b <= max_buckets), NICE_BUCKETS_S[-1])


def _floor(at: datetime, start: datetime, size_s: int) -> datetime:
    return start + timedelta(seconds=(at - start).total_seconds() // size_s * size_s)


def latency_points(session: Session, start: datetime, end: datetime, component_id: int | None,
                   size_s: int) -> tuple[LatencyPoint, ...]:
    """Rollups of the window summed per minute in SQL, then per bucket here."""
    stmt = (select(CheckRollup.minute, func.sum(CheckRollup.checks),
                   func.sum(CheckRollup.latency_p50_ms * CheckRollup.checks),
                   func.sum(CheckRollup.latency_p95_ms * CheckRollup.checks), func.max(CheckRollup.latency_max_ms))
            .where(CheckRollup.minute >= start, CheckRollup.latency_p50_ms.is_not(None)).group_by(CheckRollup.minute))
    if component_id is not None:
        stmt = stmt.where(CheckRollup.component_id == component_id)
    sums: dict[datetime, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for minute, checks, p50, p95, max_ms in session.execute(stmt):
        acc = sums[_floor(minute, start, size_s)]
        acc[0] += int(checks or 0)
        acc[1] += float(p50 or 0.0)
        acc[2] += float(p95 or 0.0)
        acc[3] = max(acc[3], float(max_ms or 0.0))
    out = []
    for at in sorted(sums):
        count, p50_sum, p95_sum, top_ms = sums[at]
        out.append(LatencyPoint(at, int(count), round(p50_sum / count, 3) if count else None,
                                round(p95_sum / count, 3) if count else None, round(top_ms, 3)))
    return tuple(out)


def mttr_points(incidents: Sequence[IncidentReport], start: datetime, size_s: int) -> tuple[MttrPoint, ...]:
    """Resolved incidents by the bucket they were resolved in (only those resolved within the window)."""
    by_bucket: dict[datetime, list[float]] = defaultdict(list)
    for incident in incidents:
        if incident.resolved_at is not None and incident.resolved_at >= start:
            by_bucket[_floor(incident.resolved_at, start, size_s)].append(incident.duration_s)
    return tuple(MttrPoint(at, len(d), round(sum(d) / len(d), 3)) for at, d in sorted(by_bucket.items()))


def strategy_figures(incidents: Sequence[IncidentReport]) -> tuple[StrategyFigures, ...]:
    """Executed attempts per strategy: succeeded (any verdict), failed (any failure), verified."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for incident in incidents:
        for step in incident.steps:
            if not step.executed:
                continue
            acc = counts[step.strategy]
            acc[0] += 1
            acc[1] += step.status == "succeeded"
            acc[2] += step.status in ("failed", "failed_verification", "timed_out", "abandoned")
            acc[3] += step.verified
    return tuple(StrategyFigures(name, *acc) for name, acc in sorted(counts.items()))


def build_figures(session: Session, incidents: Sequence[IncidentReport], start: datetime, end: datetime,
                  component_id: int | None) -> Figures:
    window_s = (end - start).total_seconds()
    size = bucket_size(window_s, MAX_LATENCY_POINTS)
    mttr_size = bucket_size(window_s, MAX_MTTR_BUCKETS)
    return Figures(size, latency_points(session, start, end, component_id, size), mttr_size,
                   mttr_points(incidents, start, mttr_size), strategy_figures(incidents))
