"""The degradation level timeline of a report: each scope's published level over the window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.db.models import DegradationEvent
from orchestrator.degradation import store
from orchestrator.reports.charts import Segment


@dataclass(frozen=True)
class LevelTimeline:
    """One scope: its level as consecutive segments, and the changes within the window (oldest first)."""

    scope: str
    segments: tuple[Segment, ...]
    changes: tuple[dict[str, Any], ...]

    @property
    def seconds_by_level(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for seg in self.segments:
            out[seg.state] = out.get(seg.state, 0.0) + (seg.end - seg.start).total_seconds()
        return out


def load_level_timelines(session: Session, start: datetime, end: datetime) -> tuple[LevelTimeline, ...]:
    """Every scope that published a level before ``end``, global first."""
    scopes = sorted(set(session.scalars(select(DegradationEvent.scope).where(DegradationEvent.at < end))),
                    key=lambda s: (s != "global", s))
    out = []
    for scope in scopes:
        level = store.level_before(session, scope, start) or "normal"
        changes = list(reversed(store.history(session, scope=scope, since=start, until=end, limit=10_000)))
        segments, since = [], start
        for change in changes:
            if change["at"] > since:
                segments.append(Segment(since, change["at"], level))
            level, since = change["to"], max(since, change["at"])
        if end > since:
            segments.append(Segment(since, end, level))
        out.append(LevelTimeline(scope, tuple(segments), tuple(changes)))
    return tuple(out)
