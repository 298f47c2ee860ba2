"""Plain view models for the pages, built from the same view builders as the API, never ORM objects."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.components.views import (
    ComponentFilter,
    component_views,
    push_summary,
    state_counts,
    transition_views,
)
from orchestrator.core.states import IncidentStatus, UpdateState
from orchestrator.db.models import CheckResultRow, CheckRollup, Component
from orchestrator.degradation import actions
from orchestrator.degradation.policy import GLOBAL_SCOPE
from orchestrator.incidents import operator
from orchestrator.incidents.updates import list_updates
from orchestrator.reports.charts import Segment
from orchestrator.reports.uptime import component_segments, load_timelines, watched_until
from orchestrator.web import chartmodels
from orchestrator.web.source import WebSource
from orchestrator.web.summary import daemon_dict, open_incident_counts

#: components per page of the overview
PAGE_SIZE = 100
#: the availability bar and sparkline on the overview cover this long
OVERVIEW_WINDOW = timedelta(hours=24)
SPARK_MINUTES = 60
#: the component page's timeline and latency chart
DETAIL_WINDOW = timedelta(days=7)


def _segments(session: Session, ids: list[int], start: datetime, now: datetime) -> dict[int, list[Segment]]:
    """Each component's segments over [start, now), in one transitions query for all of them."""
    if not ids:
        return {}
    timelines = load_timelines(session, start, ids)
    rows = session.execute(select(Component.id, Component.state, Component.created_at, Component.last_check_at,
                                  Component.interval_s).where(Component.id.in_(ids))).all()
    return {cid: component_segments(timelines.get(cid), state, created, start, now, watched_until(last, interval))
            for cid, state, created, last, interval in rows}


def _window(session: Session, ids: list[int], now: datetime, window: timedelta, name: str) -> tuple[datetime, str]:
    """Where the bars start and their heading: the last ``window``, or less when the components shown are
    all younger (a fleet registered a minute ago would otherwise draw one invisible sliver)."""
    oldest = session.scalar(select(func.min(Component.created_at)).where(Component.id.in_(ids))) if ids else None
    if oldest is None or oldest <= now - window:
        return now - window, name
    return oldest, f"since {oldest.strftime('%H:%M:%S')} UTC"


def _spark(session: Session, ids: list[int], now: datetime) -> dict[int, list[float | None]]:
    """The last hour's per-minute median latency of each component (None for a minute with no rollup)."""
    first = (now - timedelta(minutes=SPARK_MINUTES)).replace(second=0, microsecond=0)
    values: dict[int, list[float | None]] = defaultdict(lambda: [None] * SPARK_MINUTES)
    if ids:
        stmt = select(CheckRollup.component_id, CheckRollup.minute, CheckRollup.latency_p50_ms).where(
            CheckRollup.component_id.in_(ids), CheckRollup.minute >= first)
        for cid, minute, p50 in session.execute(stmt):
            index = int((minute - first).total_seconds() // 60)
            if 0 <= index < SPARK_MINUTES:
                values[cid][index] = p50
    for line in values.values():  # fitted to the data present: 20 minutes of data fill the line
        while len(line) > 2 and line[0] is None:
            line.pop(0)
    return values


def _ids(session: Session, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    return dict(session.execute(select(Component.name, Component.id).where(Component.name.in_(names))).all())


def overview(source: WebSource, where: ComponentFilter, after: str | None) -> dict[str, Any]:
    """``/``: counts, one page of components with their bars, open incidents, recent actions, the daemon."""
    now = source.clock.now()
    facts = source.facts()
    with source.db.read() as session:
        views = component_views(session, now, where=where, after=after, limit=PAGE_SIZE + 1)
        more = len(views) > PAGE_SIZE
        views = views[:PAGE_SIZE]
        ids = _ids(session, [v["name"] for v in views])
        since, span = _window(session, list(ids.values()), now, OVERVIEW_WINDOW, "last 24 h")
        segments = _segments(session, list(ids.values()), since, now)
        sparks = _spark(session, list(ids.values()), now)
        uptime = chartmodels.uptimes(session, list(ids.values()), now)
        counts = state_counts(session, now)
        incident_counts = open_incident_counts(session)
    for view in views:
        cid = ids[view["name"]]
        view["segments"], view["spark"], view["uptime"] = segments.get(cid, []), sparks[cid], uptime[cid]
        view["push_line"] = push_summary(view)
    open_incidents = [i for status in incident_counts if incident_counts[status]
                      for i in operator.list_incidents(source.db, status=status, limit=50)]
    open_incidents.sort(key=lambda i: i["id"], reverse=True)
    return {"now": now, "since": since, "span": span, "components": views,
            "next_after": views[-1]["name"] if more else None, "counts": counts, "incident_counts": incident_counts,
            "open_incidents": open_incidents[:50], "actions": operator.recent_actions(source.db, limit=15),
            "daemon": daemon_dict(facts), "degradation": _degradation(source)}


def _degradation(source: WebSource) -> list[dict[str, Any]]:
    """The published levels, global first, for the banner ([] before any daemon published one); each
    with ``notes``: what the orchestrator applies to itself (a frozen automation, its own overload)."""
    docs = source.degradation()
    return [{**d, "notes": actions.notes(d, page=True) if d["scope"] == GLOBAL_SCOPE else [],
             # the override is shown once, from its own fields; the reasons repeat it as text
             "reasons": [r for r in d["reasons"] if not (d.get("override") and r.startswith("override by "))]}
            for d in sorted(docs.values(), key=lambda d: (d["scope"] != GLOBAL_SCOPE, d["scope"]))]


def component_page(source: WebSource, name: str, range_key: str = chartmodels.DEFAULT_RANGE) -> dict[str, Any]:
    """``/components/NAME``: definition, uptime, state timeline, latency over ``range_key``, the last
    checks, transitions, incidents, journal."""
    now = source.clock.now()
    with source.db.read() as session:
        view = component_views(session, now, name)[0]
        view["push_line"] = push_summary(view)
        cid = _ids(session, [name])[name]
        since, span = _window(session, [cid], now, DETAIL_WINDOW, "last 7 days")
        segments = _segments(session, [cid], since, now).get(cid, [])
        transitions = transition_views(session, name, limit=50)
        latency = chartmodels.latency(session, cid, now, range_key)
        uptime = chartmodels.uptimes(session, [cid], now)[cid]
        beats = chartmodels.heartbeat(session, cid)
    return {"now": now, "c": view, "segments": segments, "since": since, "span": span, "latency": latency,
            "uptime": uptime, "beats": beats, "transitions": transitions,
            "updates": list_updates(source.db, view["open_incident"]) if view.get("open_incident") else [],
            "incidents": operator.list_incidents(source.db, component=name, limit=20),
            "journal": operator.component_journal(source.db, name, limit=30)}


def incident_page(source: WebSource, incident_id: int) -> dict[str, Any]:
    """``/incidents/ID``: the incident, its timeline of events, and what an operator may do now."""
    incident = operator.show_incident(source.db, incident_id)
    first_failure = None
    if incident["component"] is not None:
        with source.db.read() as session:
            first_failure = _first_failure(session, incident["component"], incident["opened_at"])
    events = timeline(incident, first_failure)
    for update in list_updates(source.db, incident_id):  # what people told its audience
        events.append({"at": update["at"], "kind": "update",
                       "title": f"{'public' if update['public'] else 'private'} update by {update['author']}: "
                                f"{update['state']}", "detail": update["message"]})
    events.sort(key=lambda e: e["at"])
    return {"i": incident, "timeline": events, "update_states": [s.value for s in UpdateState],
            "actions": operator.available_actions(incident),
            "resolved": incident["status"] == IncidentStatus.RESOLVED.value}


def _first_failure(session: Session, name: str, opened_at: datetime) -> datetime | None:
    """The first failed check of the run of failures that opened the incident (raw results only)."""
    cid = session.scalar(select(Component.id).where(Component.name == name))
    if cid is None:
        return None
    last_ok = session.scalar(select(CheckResultRow.checked_at).where(
        CheckResultRow.component_id == cid, CheckResultRow.ok.is_(True), CheckResultRow.checked_at <= opened_at)
        .order_by(CheckResultRow.checked_at.desc()).limit(1))
    stmt = select(CheckResultRow.checked_at).where(CheckResultRow.component_id == cid, CheckResultRow.ok.is_(False),
                                                   CheckResultRow.checked_at <= opened_at)
    if last_ok is not None:
        stmt = stmt.where(CheckResultRow.checked_at > last_ok)
    return session.scalar(stmt.order_by(CheckResultRow.checked_at).limit(1))


#: incident_events shown on the page's timeline (status changes show through the incident's own columns)
_TIMELINE_EVENTS = {"reminder": "reminder sent", "escalation": "escalated to the next tier",
                    "alert_firing": "an alert joined", "alert_resolved": "an alert resolved"}


def timeline(incident: dict[str, Any], first_failure: datetime | None) -> list[dict[str, Any]]:
    """Every event of the incident in time order: failure, detection, attempts, humans, resolution."""
    events: list[dict[str, Any]] = []

    def add(at, kind, title, **extra):
        if at is not None:
            events.append({"at": at, "kind": kind, "title": title, **extra})

    add(first_failure, "failure", "first failed check")
    add(incident["opened_at"], "detected", "incident opened", detail=incident["reason"])
    for row in incident["journal"]:
        add(row["claimed_at"], "attempt", f"step {row['step_index']} attempt {row['attempt']}: {row['strategy']}",
            row=row, check=verification_line(row["verification"] or {}))
    for note in incident["notifications"]:
        add(note["created_at"], "notification", f"notified {note['channel']} ({note['event']}): {note['status']}",
            detail=note["error"])
    add(incident["acked_at"], "human", f"acknowledged by {incident['acked_by']}")
    add(incident["approved_at"], "human", f"approved by {incident['approved_by']}")
    for note in incident["notes"]:
        add(note["at"], "note", f"note by {note['author']}", detail=note["text"])
    for alert in incident.get("alerts", []):
        add(alert["received_at"], "alert", f"alert {alert['name']} received ({alert['status']})", alert=alert)
    for event in incident.get("events", []):
        if event["kind"] in _TIMELINE_EVENTS:
            add(event["at"], event["kind"], _TIMELINE_EVENTS[event["kind"]], detail=event["reason"])
    why = incident.get("status_reason")
    add(incident["escalated_at"], "escalated", "escalated to a human",
        detail=why if incident["status"] == "escalated" else None)
    add(incident["resolved_at"], "resolved", f"resolved ({incident['resolution'] or 'unknown'})",
        detail=why if incident["status"] == "resolved" else None)
    return sorted(events, key=lambda e: e["at"])


def verification_line(record: dict[str, Any]) -> dict[str, Any] | None:
    """The page's one line about a journal row's verification record, whatever kind it is: a check
    (``mode``/``passed``/``reason``), a failed action's ``permanent`` flag, one under way (``verifying``),
    or one reconciled after its owner died. None when there is nothing to say. Keys: text, passed."""
    if not record:
        return None
    if record.get("verifying"):
        return {"text": "verification under way (the action had returned)", "passed": None}
    passed = bool(record.get("passed"))
    mode = record.get("mode")
    if mode == "none":  # a step never verified (notify): neither passed nor failed, and not shown red
        reason = record.get("reason")
        return {"text": f"not verified ({reason})" if reason else "not verified: this step has no check",
                "passed": None}
    if mode is not None:
        text = f"verification {mode}: {'passed' if passed else 'not passed'}"
    elif record.get("reconciled"):
        text = "reconciled after its owner stopped" + (" (interrupted)" if record.get("interrupted") else "")
    elif "permanent" in record:
        text = "not verified: the action failed" + (" permanently" if record["permanent"] else "")
    else:
        text = "verification: " + ("passed" if passed else "not passed")
    reason = record.get("reason")
    return {"text": f"{text} {reason}" if reason else text, "passed": passed}
