"""Per-minute aggregates of check results, accumulated in memory and written when a minute closes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, select
from sqlalchemy.orm import Session

from orchestrator.db.models import CheckRollup


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


@dataclass
class _Bucket:
    checks: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)


class Rollups:
    """Buckets keyed by (component id, minute). ``closed(now)`` hands over the finished minutes."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[int, datetime], _Bucket] = {}

    def add(self, component_id: int, at: datetime, ok: bool, latency_ms: float) -> None:
        minute = at.replace(second=0, microsecond=0)
        bucket = self._buckets.get((component_id, minute))
        if bucket is None:
            bucket = self._buckets[(component_id, minute)] = _Bucket()
        bucket.checks += 1
        bucket.failures += 0 if ok else 1
        bucket.latencies.append(latency_ms)

    def closed(self, now: datetime, *, everything: bool = False) -> list[dict[str, Any]]:
        """Rows for every minute that ended before ``now`` (all of them when ``everything``)."""
        current = now.replace(second=0, microsecond=0)
        done = [key for key in self._buckets if everything or key[1] < current]
        rows = []
        for key in done:
            bucket = self._buckets.pop(key)
            lat = sorted(bucket.latencies)
            rows.append({
                "component_id": key[0], "minute": key[1], "checks": bucket.checks, "failures": bucket.failures,
                "latency_p50_ms": percentile(lat, 0.50), "latency_p95_ms": percentile(lat, 0.95),
                "latency_max_ms": lat[-1],
            })
        return rows

    def forget(self, component_ids: Iterable[int]) -> None:
        """Drop the open minutes of removed components."""
        gone = set(component_ids)
        for key in [key for key in self._buckets if key[0] in gone]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


def upsert_rollups(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert finished minutes in one statement; a minute seen again (a restart mid-minute) is merged:
    counts added, p95 and max the larger of the two (p50 stays the first one's)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(CheckRollup)
    new = stmt.excluded

    def larger(column):
        old = getattr(CheckRollup, column)
        return case((new[column] > func.coalesce(old, 0), new[column]), else_=old)

    conn.execute(stmt.on_conflict_do_update(index_elements=["component_id", "minute"], set_={
        "checks": CheckRollup.checks + new.checks, "failures": CheckRollup.failures + new.failures,
        "latency_p95_ms": larger("latency_p95_ms"), "latency_max_ms": larger("latency_max_ms"),
    }), rows)


#: component ids per query when reading rollups for many components (bounded IN lists)
READ_CHUNK = 500


def recent_p50s(session: Session, component_ids: Iterable[int],
                since: datetime) -> dict[int, list[tuple[datetime, float]]]:
    """(minute, p50 latency) of the minutes since ``since`` without a failure, oldest first, by component
    (the early warning's baseline seed; served by the primary key (component_id, minute))."""
    ids = sorted(set(component_ids))
    out: dict[int, list[tuple[datetime, float]]] = {}
    for i in range(0, len(ids), READ_CHUNK):
        rows = session.execute(
            select(CheckRollup.component_id, CheckRollup.minute, CheckRollup.latency_p50_ms)
            .where(CheckRollup.component_id.in_(ids[i:i + READ_CHUNK]), CheckRollup.minute >= since,
                   CheckRollup.failures == 0, CheckRollup.latency_p50_ms.is_not(None))
            .order_by(CheckRollup.component_id, CheckRollup.minute))
        for cid, minute, p50 in rows:
            out.setdefault(cid, []).append((minute, p50))
    return out
