"""Alerts as an incident source: an alert posted to the API opens (or joins) its component's incident.

One post (Alertmanager's webhook, or the generic form of docs/alerts.md) is taken in ONE transaction,
all its alerts or none:

1. each alert is found by its fingerprint: a firing row already stored is updated, a new one is inserted
   (one ``alerts`` row per firing episode, kept after it resolves);
2. a new firing alert is mapped to a component (:class:`AlertRouting`: the ``component`` label, or the
   first ``map`` entry whose labels match); the component's active incident is joined (an
   ``alert_firing`` event on its timeline), or a new incident is opened with source ``alert``. The
   recovery loop finds it in the rows like any other: the component's plan runs under the same guards
   and is verified with the component's own check (a healthy check closes it as ``self``);
3. a resolved alert ends an incident it opened once none of its alerts fires any more, unless an action
   is in flight (its run verifies and closes it) or the component's own check still says it is down;
4. a firing alert no component matches opens an incident of kind ``alert`` (no component, nothing to
   run): stored and notified like any opened incident, never dropped silently; it ends when the alert
   resolves.

Must never break I5 of docs/guarantees.md (no needless action): an alert is a reason to look, not
to act; the recovery loop's fresh check runs before any action, and a component whose check passes is
closed as ``self`` untouched. Serves I2 (an incident that acts, waits with a reason, or calls a
person) for what only an alert saw: every alert is a row, matched or not, and one no component
matches still reaches a person.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.states import (
    ACTIVE_INCIDENT_STATUSES,
    AlertStatus,
    AttemptStatus,
    ComponentState,
    IncidentKind,
    IncidentSource,
    IncidentStatus,
    Resolution,
)
from orchestrator.db.engine import Database, rows_changed
from orchestrator.db.models import Alert, Component, Incident, JournalEntry
from orchestrator.incidents import events, status
from orchestrator.incidents.lifecycle import active_incident, open_incident, resolve

#: The label that names an alert's component unless the plan file says otherwise.
DEFAULT_COMPONENT_LABEL = "component"
#: Annotation keys shown in an incident's reason, first found first.
_SUMMARY_KEYS = ("summary", "description", "message")
#: Component states in which a resolved alert does not close the incident: the check still sees it broken.
_BROKEN = (ComponentState.DOWN.value, ComponentState.FLAPPING.value)
_ACTIVE = [s.value for s in ACTIVE_INCIDENT_STATUSES]


class AlertMapEntry(BaseModel):
    """Alerts whose labels include every pair of ``match`` belong to ``component``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    match: dict[str, str] = Field(min_length=1)
    component: str = Field(min_length=1, max_length=63)


class AlertRouting(BaseModel):
    """``alerts`` in recovery_strategies.json: how an alert names its component (docs/alerts.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    #: the label whose value is the component's name
    component_label: str = Field(DEFAULT_COMPONENT_LABEL, min_length=1)
    #: tried in order when the label is absent
    map: list[AlertMapEntry] = Field(default_factory=list)

    def component_for(self, labels: dict[str, str]) -> str | None:
        """The component name the alert's labels point at, or None."""
        if labels.get(self.component_label):
            return labels[self.component_label]
        for entry in self.map:
            if all(labels.get(k) == v for k, v in entry.match.items()):
                return entry.component
        return None


@dataclass(frozen=True)
class AlertIn:
    """One alert as posted, in either form."""

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    origin: str  # "alertmanager" or "generic"
    fingerprint: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str | None = None

    @property
    def name(self) -> str:
        return self.labels.get("alertname") or self.labels.get("name") or "alert"

    @property
    def key(self) -> str:
        """The alert's identity: its fingerprint, else a hash of its labels (Alertmanager's idea of it)."""
        if self.fingerprint:
            return self.fingerprint[:128]
        return hashlib.sha256(json.dumps(self.labels, sort_keys=True).encode()).hexdigest()[:16]

    def summary(self) -> str:
        text = next((self.annotations[k] for k in _SUMMARY_KEYS if self.annotations.get(k)), "")
        return f"alert {self.name} firing" + (f": {text}" if text else "")


def _when(at: datetime | None) -> datetime | None:
    """Alertmanager writes 0001-01-01T00:00:00Z for "no end": not a time."""
    return None if at is None or at.year < 1970 else at


def intake(db: Database, alerts: list[AlertIn], *, routing: AlertRouting | None = None,
           clock: Clock = SYSTEM_CLOCK) -> list[dict[str, Any]]:
    """Take one post's alerts (all in one transaction); what became of each, in order."""
    routing = routing or AlertRouting()
    now = clock.now()
    with db.write() as session:
        return [_one(session, alert, routing, now) for alert in alerts]


def _one(session: Session, alert: AlertIn, routing: AlertRouting, now: datetime) -> dict[str, Any]:
    row = session.scalar(select(Alert).where(Alert.fingerprint == alert.key,
                                             Alert.status == AlertStatus.FIRING.value).order_by(Alert.id.desc()).limit(1))
    if alert.status is AlertStatus.RESOLVED:
        return _resolved(session, row, alert, routing, now)
    if row is not None:  # a repeat of a firing alert: new labels/annotations, nothing opened again
        row.labels, row.annotations, row.updated_at = alert.labels, alert.annotations, now
        return _outcome(row, "already_firing")
    row = _insert(session, alert, routing, now)
    component = (session.scalar(select(Component).where(Component.name == row.component_name))
                 if row.component_name else None)
    if component is None:
        return _unmatched(session, row, alert, routing, now)
    row.component_id = component.id
    joined = active_incident(session, component.id)
    if joined is not None:
        row.incident_id = joined.id
        events.record(session, joined.id, "alert_firing", now, reason=alert.summary())
        return _outcome(row, "joined")
    opened = open_incident(session, component_id=component.id, component_name=component.name, at=now,
                           reason=alert.summary())
    if opened is None:  # cannot happen inside this transaction; said rather than lost
        return _outcome(row, "recorded")
    incident = session.get(Incident, opened.incident_id)
    assert incident is not None  # opened in this transaction
    incident.source = IncidentSource.ALERT.value
    row.incident_id = incident.id
    return _outcome(row, opened.kind)


def _insert(session: Session, alert: AlertIn, routing: AlertRouting, now: datetime,
            status_: AlertStatus = AlertStatus.FIRING) -> Alert:
    row = Alert(fingerprint=alert.key, origin=alert.origin, status=status_.value, name=alert.name[:255],
                component_name=(routing.component_for(alert.labels) or "")[:63] or None, labels=alert.labels,
                annotations=alert.annotations, generator_url=alert.generator_url, starts_at=_when(alert.starts_at),
                ends_at=_when(alert.ends_at), received_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row


def _unmatched(session: Session, row: Alert, alert: AlertIn, routing: AlertRouting, now: datetime) -> dict[str, Any]:
    """No component to act on: an incident about the alert itself, so a person hears of it."""
    named = (f"{routing.component_label}={row.component_name!r} is no registered component" if row.component_name
             else f"no {routing.component_label!r} label and no alerts.map entry matches")
    incident = status.create(session, component_id=None, component_name=None, at=now,
                             reason=f"{alert.summary()} ({named})", kind=IncidentKind.ALERT)
    incident.source = IncidentSource.ALERT.value
    row.incident_id = incident.id
    return _outcome(row, "unmatched")


def _resolved(session: Session, row: Alert | None, alert: AlertIn, routing: AlertRouting,
              now: datetime) -> dict[str, Any]:
    if row is None:  # resolved without our having seen it fire (we were away, or it was routed elsewhere)
        return _outcome(_insert(session, alert, routing, now, AlertStatus.RESOLVED), "recorded")
    # an alert's status moves once, firing -> resolved, by compare-and-set (a concurrent post may have)
    moved = rows_changed(session.execute(
        update(Alert).where(Alert.id == row.id, Alert.status == AlertStatus.FIRING.value)
        .values(status=AlertStatus.RESOLVED.value, updated_at=now, labels=alert.labels,
                annotations=alert.annotations, ends_at=_when(alert.ends_at) or now)
        .execution_options(synchronize_session="fetch")))
    if moved != 1:
        return _outcome(row, "recorded")
    incident = session.get(Incident, row.incident_id) if row.incident_id else None
    if incident is None or incident.status not in _ACTIVE:
        return _outcome(row, "recorded")
    why = f"alert {row.name} resolved"
    if not _ends_with_alert(session, incident):
        events.record(session, incident.id, "alert_resolved", now, reason=why)
        return _outcome(row, "recorded")
    resolve(session, incident, at=now, resolution=Resolution.SELF, reason=why)
    return _outcome(row, "resolved")


def _ends_with_alert(session: Session, incident: Incident) -> bool:
    """Whether its last alert resolving closes the incident: an alert opened it, no other alert of it
    fires, no action is in flight (the run verifies its own), and the component's check does not say DOWN."""
    if incident.source != IncidentSource.ALERT.value or incident.status == IncidentStatus.RECOVERING.value:
        return False
    if session.scalar(select(exists().where(Alert.incident_id == incident.id,
                                            Alert.status == AlertStatus.FIRING.value))):
        return False
    if session.scalar(select(exists().where(JournalEntry.incident_id == incident.id,
                                            JournalEntry.status == AttemptStatus.RUNNING.value))):
        return False
    if incident.component_id is None:
        return True
    state = session.scalar(select(Component.state).where(Component.id == incident.component_id))
    return state not in _BROKEN


def _outcome(row: Alert, what: str) -> dict[str, Any]:
    return {"fingerprint": row.fingerprint, "alert": row.name, "status": row.status, "component": row.component_name,
            "incident": row.incident_id, "outcome": what}


def alerts_of(session: Session, incident_id: int) -> list[dict[str, Any]]:
    """An incident's alerts, oldest first, as the incident view shows them (runbook_url as a link)."""
    rows = session.scalars(select(Alert).where(Alert.incident_id == incident_id).order_by(Alert.id))
    return [_view(r) for r in rows]


def list_alerts(db: Database, *, status: str | None = None, component: str | None = None,
                before: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Alerts newest first (``before`` an id pages back), with their component and incident: also the ones
    no component matched and the ones only seen resolved (the primary key serves the order)."""
    stmt = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Alert.status == status)
    if component is not None:
        stmt = stmt.where(Alert.component_name == component)
    if before is not None:
        stmt = stmt.where(Alert.id < before)
    with db.read() as session:
        return [{"id": r.id, "component": r.component_name, "incident": r.incident_id, **_view(r)}
                for r in session.scalars(stmt)]


def _view(r: Alert) -> dict[str, Any]:
    return {"name": r.name, "status": r.status, "origin": r.origin, "fingerprint": r.fingerprint,
            "labels": dict(r.labels or {}), "annotations": dict(r.annotations or {}),
            "runbook_url": runbook_link(r.annotations), "generator_url": _link(r.generator_url),
            "starts_at": r.starts_at, "ends_at": r.ends_at, "received_at": r.received_at}


def runbook_link(annotations: dict[str, Any] | None) -> str | None:
    """The ``runbook_url`` annotation when it may be shown as a link (http or https), else None."""
    return _link((annotations or {}).get("runbook_url"))


def _link(url: str | None) -> str | None:
    """Only http(s) links are shown as links (a javascript: URL in an annotation must not become one)."""
    return url if url and url.split(":", 1)[0].lower() in ("http", "https") else None
