"""Incident events: durable rows written in the transaction that made them happen, read by the notifier.

Every status change writes one (:mod:`orchestrator.incidents.status` does it), and :func:`record` adds
the few that change no status (``step_failed``). Nothing travels as an in-memory callback: a crash
between a change and its notification loses nothing, the next process reads the row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.core.redaction import redact
from orchestrator.db.models import Incident, IncidentEventRow

#: Longest reason kept in an event row.
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class IncidentEvent:
    """Something happened to an incident: ``opened``, ``reopened``, ``resolved``, ``escalated``..."""

    kind: str
    incident_id: int
    component_id: int | None
    component_name: str | None
    at: datetime
    reason: str | None = None
    resolution: str | None = None
    #: the incident_events row it was read from (None when built in memory)
    event_id: int | None = None


def clip(text: str | None) -> str | None:
    """A reason as stored: redacted, one line, capped."""
    return " ".join(redact(text).split())[:MAX_REASON_CHARS] if text else text


def add(session: Session, incident_id: int, kind: str, at: datetime, *, reason: str | None = None,
        from_status: str | None = None, to_status: str | None = None, resolution: str | None = None) -> None:
    """Append one event row in the caller's transaction."""
    session.add(IncidentEventRow(incident_id=incident_id, at=at, kind=kind, from_status=from_status,
                                 to_status=to_status, reason=clip(reason), resolution=resolution))


def record(session: Session, incident_id: int, kind: str, at: datetime, reason: str | None = None) -> None:
    """An event that changes no status (e.g. ``step_failed``)."""
    add(session, incident_id, kind, at, reason=reason)


def pending(session: Session, limit: int, *, besides: Iterable[int] = ()) -> list[IncidentEvent]:
    """Events not yet notified, oldest first, without the ids in ``besides`` (those the caller has
    queued already); served by ix_incident_events_notified_at. Not "ids above the last one read": on
    PostgreSQL ids are taken when a row is inserted and seen when its transaction commits, so a row
    with a lower id can appear after a higher one was read."""
    stmt = (select(IncidentEventRow, Incident.component_id, Incident.component_name)
            .join(Incident, Incident.id == IncidentEventRow.incident_id)
            .where(IncidentEventRow.notified_at.is_(None)))
    skipped = sorted(set(besides))
    if skipped:
        stmt = stmt.where(IncidentEventRow.id.not_in(skipped))
    rows = session.execute(stmt.order_by(IncidentEventRow.id).limit(limit))
    return [IncidentEvent(row.kind, row.incident_id, cid, name, row.at, row.reason, row.resolution, row.id)
            for row, cid, name in rows]


def take(session: Session, event_ids: Iterable[int], now: datetime) -> set[int]:
    """Mark events notified by compare-and-set; the ids this caller took (another process may have)."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return set()
    stmt = (update(IncidentEventRow)
            .where(IncidentEventRow.id.in_(wanted), IncidentEventRow.notified_at.is_(None))
            .values(notified_at=now).returning(IncidentEventRow.id)
            .execution_options(synchronize_session=False))
    return set(session.scalars(stmt))


def timeline(session: Session, incident_id: int) -> list[IncidentEventRow]:
    """An incident's events, oldest first."""
    return list(session.scalars(select(IncidentEventRow).where(IncidentEventRow.incident_id == incident_id)
                                .order_by(IncidentEventRow.id)))
