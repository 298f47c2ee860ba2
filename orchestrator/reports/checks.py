"""Check counts, failures and latency per component over a window, from the per-minute rollups.

Rollups are written when a minute closes, so the newest minutes (and a minute whose rollup a crash
lost) exist only as raw results: those are counted from ``check_results``. Like rollups, only
*reliable* results count (ones taken while the orchestrator's own sentinels were failing are not).

Latency percentiles over a window cannot be rebuilt exactly from per-minute percentiles; p50 and p95
are the check-weighted mean of the per-minute values (the raw tail counts as one bucket with exact
percentiles). The maximum is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import Session

from orchestrator.db.models import CheckResultRow, CheckRollup
from orchestrator.history.rollup import percentile


@dataclass(frozen=True)
class CheckFigures:
    """One component's checks within the window."""

    checks: int = 0
    failures: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_max_ms: float | None = None


@dataclass
class _Sums:
    checks: int = 0
    failures: int = 0
    weight: int = 0  # checks of the buckets that have percentiles
    p50_sum: float = 0.0
    p95_sum: float = 0.0
    max_ms: float | None = None

    def figures(self) -> CheckFigures:
        mean = (lambda total: round(total / self.weight, 3)) if self.weight else (lambda _total: None)
        max_ms = None if self.max_ms is None else round(self.max_ms, 3)
        return CheckFigures(self.checks, self.failures, mean(self.p50_sum), mean(self.p95_sum), max_ms)


def _minute_of(column, dialect: str):
    """SQL for the minute a timestamp falls in, equal to how ``CheckRollup.minute`` is stored."""
    if dialect == "postgresql":
        return func.date_trunc("minute", column)
    # SQLite stores naive UTC text as 'YYYY-MM-DD HH:MM:SS.ffffff' (always with microseconds): cutting
    # the text is exact and half the cost of strftime, which parses every one of a million timestamps
    return func.substr(column, 1, 16).concat(":00.000000")


def load_check_figures(session: Session, start: datetime, component_id: int | None) -> dict[int, CheckFigures]:
    """component id → figures, from one aggregate over rollups and one over the raw tail.

    ``start`` is floored to the minute so rollups and raw results cover the same whole minutes.
    """
    start = start.replace(second=0, microsecond=0)
    weighted = CheckRollup.latency_p50_ms.is_not(None)
    rollups = (
        select(CheckRollup.component_id, func.sum(CheckRollup.checks), func.sum(CheckRollup.failures),
               func.sum(case((weighted, CheckRollup.checks), else_=0)),
               func.sum(CheckRollup.latency_p50_ms * CheckRollup.checks),
               func.sum(CheckRollup.latency_p95_ms * CheckRollup.checks), func.max(CheckRollup.latency_max_ms))
        .where(CheckRollup.minute >= start)
        .group_by(CheckRollup.component_id)
    )
    rolled = exists().where(and_(CheckRollup.component_id == CheckResultRow.component_id,
                                 CheckRollup.minute == _minute_of(CheckResultRow.checked_at,
                                                                  session.get_bind().dialect.name)))
    raw = (
        select(CheckResultRow.component_id, CheckResultRow.ok, CheckResultRow.latency_ms)
        .where(CheckResultRow.checked_at >= start, CheckResultRow.reliable.is_(True), ~rolled)
        .order_by(CheckResultRow.component_id)
    )
    if component_id is not None:
        rollups = rollups.where(CheckRollup.component_id == component_id)
        raw = raw.where(CheckResultRow.component_id == component_id)
    sums: dict[int, _Sums] = {}
    for cid, checks, failures, weight, p50_sum, p95_sum, max_ms in session.execute(rollups):
        sums[cid] = _Sums(int(checks or 0), int(failures or 0), int(weight or 0), float(p50_sum or 0.0),
                          float(p95_sum or 0.0), max_ms)
    tails: dict[int, list[tuple[bool, float]]] = {}
    for cid, ok, latency_ms in session.execute(raw):
        tails.setdefault(cid, []).append((ok, latency_ms))
    for cid, results in tails.items():
        _add_tail(sums.setdefault(cid, _Sums()), results)
    return {cid: s.figures() for cid, s in sums.items()}


def _add_tail(sums: _Sums, results: list[tuple[bool, float]]) -> None:
    latencies = sorted(latency for _ok, latency in results)
    n = len(latencies)
    sums.checks += n
    sums.failures += sum(1 for ok, _latency in results if not ok)
    sums.weight += n
    sums.p50_sum += percentile(latencies, 0.50) * n
    sums.p95_sum += percentile(latencies, 0.95) * n
    sums.max_ms = latencies[-1] if sums.max_ms is None else max(sums.max_ms, latencies[-1])
