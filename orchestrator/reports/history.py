"""Incidents of a report window with their recovery steps and notification counts, redacted.

An incident belongs to the window when it overlaps it: opened within it, resolved within it, or still
unresolved. Four statements in all (incidents, their journal rows, their notification counts, the alerts
behind them), each selecting by the same window condition, never one per incident.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from orchestrator.core.redaction import redact
from orchestrator.db.models import Alert, Incident, JournalEntry, Notification
from orchestrator.incidents.alerts import runbook_link

#: step output kept in a report (the journal keeps it all; `incidents show` prints it whole)
MAX_OUTPUT_CHARS = 2000


@dataclass(frozen=True)
class StepReport:
    """One attempt of one recovery step."""

    step_index: int
    attempt: int
    strategy: str
    status: str
    executed: bool
    verified: bool
    finished_at: datetime | None
    detail: str | None
    output: str | None
    verification: str | None


@dataclass(frozen=True)
class AlertReport:
    """An alert that opened or joined an incident (docs/alerts.md)."""

    name: str | None
    status: str  # firing | resolved
    runbook_url: str | None  # only an http(s) link, else None


@dataclass(frozen=True)
class IncidentReport:
    """One incident. ``duration_s`` runs to ``resolved_at``, or to the report's end while unresolved."""

    id: int
    component: str | None
    component_id: int | None
    kind: str
    status: str
    resolution: str | None
    opened_at: datetime
    resolved_at: datetime | None
    duration_s: float
    escalated: bool
    reason: str | None
    plan: str | None
    blocked_by: str | None
    notifications: int
    steps: tuple[StepReport, ...]
    #: what opened it: "check" or "alert"
    source: str = "check"
    #: the alerts that opened or joined it, oldest first
    alerts: tuple[AlertReport, ...] = ()


def _clean(text: str | None, limit: int | None = None) -> str | None:
    if not text:
        return None
    text = redact(text)
    return text if limit is None or len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more chars)"


def verification_summary(record: dict[str, Any] | None) -> str | None:
    """``"check passed: healthy 2 times in a row"``, or None when the step was never verified."""
    record = record or {}
    if not record.get("mode"):
        return None
    reason = record.get("reason") or ""
    if record["mode"] == "none":
        return _clean(f"not verified{f' ({reason})' if reason else ''}")
    verdict = "passed" if record.get("passed") else "failed"
    return _clean(f"{record['mode']} {verdict}{': ' + reason if reason else ''}")


#: the journal columns a report needs (rows, not ORM objects: 10,000 incidents load in a fraction)
_STEP_COLUMNS = (JournalEntry.incident_id, JournalEntry.step_index, JournalEntry.attempt, JournalEntry.strategy,
                 JournalEntry.status, JournalEntry.executed, JournalEntry.finished_at, JournalEntry.detail,
                 JournalEntry.skip_reason, JournalEntry.output, JournalEntry.verification)
_INCIDENT_COLUMNS = (Incident.id, Incident.component_name, Incident.component_id, Incident.kind, Incident.status,
                     Incident.resolution, Incident.opened_at, Incident.resolved_at, Incident.escalated_at,
                     Incident.reason, Incident.plan, Incident.blocked_by, Incident.source)


def _step(row) -> StepReport:
    detail = row.detail or row.skip_reason
    if row.skip_reason and row.detail and row.skip_reason not in row.detail:
        detail = f"{row.detail} (skipped: {row.skip_reason})"
    return StepReport(
        step_index=row.step_index, attempt=row.attempt, strategy=row.strategy, status=row.status,
        executed=row.executed, verified=bool(row.executed and (row.verification or {}).get("passed")),
        finished_at=row.finished_at, detail=_clean(detail), output=_clean(row.output, MAX_OUTPUT_CHARS),
        verification=verification_summary(row.verification),
    )


def load_incidents(session: Session, start: datetime, end: datetime, component: str | None) -> list[IncidentReport]:
    """The window's incidents, newest first (served by ix_incidents_opened_at and ix_incidents_status)."""
    window = or_(Incident.opened_at >= start, Incident.resolved_at.is_(None), Incident.resolved_at >= start)
    if component is not None:
        window = window & (Incident.component_name == component)
    ids = select(Incident.id).where(window)
    steps: dict[int, list[StepReport]] = {}
    journal = select(*_STEP_COLUMNS).where(JournalEntry.incident_id.in_(ids)).order_by(
        JournalEntry.incident_id, JournalEntry.step_index, JournalEntry.attempt)
    for row in session.execute(journal):
        steps.setdefault(row.incident_id, []).append(_step(row))
    notes = dict(session.execute(select(Notification.incident_id, func.count()).where(
        Notification.incident_id.in_(ids)).group_by(Notification.incident_id)).all())
    alerts: dict[int, list[AlertReport]] = {}
    for row in session.execute(select(Alert.incident_id, Alert.name, Alert.status, Alert.annotations)
                               .where(Alert.incident_id.in_(ids)).order_by(Alert.id)):
        alerts.setdefault(row.incident_id, []).append(
            AlertReport(name=row.name, status=row.status, runbook_url=_clean(runbook_link(row.annotations))))
    out = []
    stmt = select(*_INCIDENT_COLUMNS).where(window).order_by(Incident.opened_at.desc(), Incident.id.desc())
    for i in session.execute(stmt):
        out.append(IncidentReport(
            id=i.id, component=i.component_name, component_id=i.component_id, kind=i.kind, status=i.status,
            resolution=i.resolution, opened_at=i.opened_at, resolved_at=i.resolved_at,
            duration_s=max(0.0, ((i.resolved_at or end) - i.opened_at).total_seconds()),
            escalated=i.escalated_at is not None, reason=_clean(i.reason), plan=i.plan, blocked_by=i.blocked_by,
            notifications=int(notes.get(i.id, 0)), steps=tuple(steps.get(i.id, ())),
            source=i.source, alerts=tuple(alerts.get(i.id, ())),
        ))
    return out
