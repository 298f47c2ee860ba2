"""The figures behind the operator pages' charts: uptime over 24 h / 7 d / 30 d, latency over a chosen
range with its axis fitted to the data present, and the strip of the last checks.

Uptime comes from the state timeline (``reports.uptime``: time up or degraded over judged time, holds
and unwatched time left out), read once over 30 days and cut at each window's start, so the three
figures agree with the badges and the report. Latency comes from the per-minute rollups, merged into
buckets so that every range draws a few hundred points at most.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, case, func, select
from sqlalchemy.orm import Session

from orchestrator.core.errors import InputError
from orchestrator.db.models import CheckResultRow, CheckRollup, Component
from orchestrator.reports.charts import Segment
from orchestrator.reports.uptime import component_segments, load_timelines, times_of, watched_until

#: the uptime windows shown on the overview and component pages, longest first is the one loaded
UPTIME_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
#: the latency chart's ranges and the bucket each is drawn in (about 60-360 points per line)
LATENCY_RANGES = {"1h": (timedelta(hours=1), 60), "24h": (timedelta(hours=24), 300),
                  "7d": (timedelta(days=7), 1800), "30d": (timedelta(days=30), 7200)}
DEFAULT_RANGE = "24h"
#: checks in the heartbeat strip
HEARTBEAT_CHECKS = 60


def uptimes(session: Session, ids: list[int], now: datetime) -> dict[int, dict[str, float | None]]:
    """component id → {"24h": %, "7d": %, "30d": %} (None: nothing judged in that window)."""
    if not ids:
        return {}
    longest = now - max(UPTIME_WINDOWS.values())
    timelines = load_timelines(session, longest, ids)
    rows = session.execute(select(Component.id, Component.state, Component.created_at, Component.last_check_at,
                                  Component.interval_s).where(Component.id.in_(ids))).all()
    out: dict[int, dict[str, float | None]] = {}
    for cid, state, created, last, interval in rows:
        pieces = component_segments(timelines.get(cid), state, created, longest, now, watched_until(last, interval))
        out[cid] = {}
        for key, window in UPTIME_WINDOWS.items():
            start = now - window
            clipped = [Segment(max(p.start, start), p.end, p.state) for p in pieces if p.end > start]
            out[cid][key] = times_of(clipped).uptime_pct
    return out


def latency_range(raw: str | None) -> str:
    """The ``range`` query parameter: one of LATENCY_RANGES (absent: 24h); InputError naming it otherwise."""
    value = raw or DEFAULT_RANGE
    if value not in LATENCY_RANGES:
        raise InputError(f"range is one of {', '.join(LATENCY_RANGES)}", field="range")
    return value


def latency(session: Session, cid: int, now: datetime, range_key: str) -> dict[str, Any]:
    """The p50/p95 series over the range in buckets (check-weighted means of the minutes in each), and
    where the chart starts: the range's start, or the first data point when the data is younger, so
    20 minutes of data fill the chart instead of a hairline at its right edge."""
    window, bucket_s = LATENCY_RANGES[range_key]
    first = now - window
    weight = case((CheckRollup.checks > 0, CheckRollup.checks), else_=1)
    bucket = _bucket(CheckRollup.minute, first, bucket_s, session.get_bind().dialect.name)
    known = and_(CheckRollup.latency_p50_ms.is_not(None), CheckRollup.latency_p95_ms.is_not(None))
    rows = session.execute(
        select(bucket, func.sum(weight), func.sum(CheckRollup.latency_p50_ms * weight),
               func.sum(CheckRollup.latency_p95_ms * weight), func.min(CheckRollup.minute), func.max(CheckRollup.minute))
        .where(CheckRollup.component_id == cid, CheckRollup.minute >= first, known)
        .group_by(bucket).order_by(bucket)).all()
    # each point sits in the middle of the minutes it merges, so the line ends where the data ends
    points = [(lo + (hi - lo) / 2, total, p50, p95) for _b, total, p50, p95, lo, hi in rows]
    times = [t for t, *_rest in points]
    series = [("p50", [(t, p50 / total) for t, total, p50, _p95 in points]),
              ("p95", [(t, p95 / total) for t, total, _p50, p95 in points])]
    start = times[0] if times and times[0] > first else first
    if times and start >= now - timedelta(minutes=1):
        start = now - timedelta(minutes=2)  # one point: give it some width
    return {"series": series, "start": start, "range": range_key, "ranges": list(LATENCY_RANGES),
            "bucket_s": bucket_s, "points": len(times)}


def _bucket(column, first: datetime, bucket_s: int, dialect: str):
    """SQL for the number of the ``bucket_s`` bucket since ``first`` a stored minute falls in."""
    if dialect == "postgresql":
        return func.floor((func.extract("epoch", column) - int(first.timestamp())) / bucket_s)
    # SQLite keeps naive UTC text; strftime('%s') reads it as UTC whole seconds (integer division: exact)
    return func.cast(func.strftime("%s", column), Integer).op("-")(int(first.timestamp())).op("/")(bucket_s)


def heartbeat(session: Session, cid: int) -> list[tuple[datetime, bool, float | None, str | None]]:
    """The last HEARTBEAT_CHECKS raw results, oldest first: (time, passed, latency ms, error)."""
    rows = session.execute(select(CheckResultRow.checked_at, CheckResultRow.ok, CheckResultRow.latency_ms,
                                  CheckResultRow.error).where(CheckResultRow.component_id == cid)
                           .order_by(CheckResultRow.checked_at.desc()).limit(HEARTBEAT_CHECKS)).all()
    return [(at, bool(ok), latency_ms, error) for at, ok, latency_ms, error in reversed(rows)]
