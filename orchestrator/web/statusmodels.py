"""The public status page's view model: display names, states, daily uptime, public updates, maintenance.

What it reads is chosen so nothing private can reach the template: from a component only its id, state
and holds (never its URL, labels, vars, errors, reasons or host); from an incident only its id, times
and component; the text shown is what people wrote in public updates. ``tests/test_statuspage.py``
plants markers in every other field and greps the page and the feed.

1. The page row names groups of (component, display name).
2. One query reads those components' states; a group shows its worst member.
3. One aggregate over the per-minute rollups gives each component's checks and failures per UTC day
   for the last 90 days (the bars); a day with no rollup is "no data", never "up".
4. Incidents of those components that have public updates, with those updates; an incident is active
   until its newest public update says ``resolved``.
5. Maintenance in force on those components (today's data: the components' own windows).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.components.statuspages import get_page
from orchestrator.components.views import effective_state_sql
from orchestrator.components.windows import Window, WindowKind, load_windows
from orchestrator.core.labels import selects
from orchestrator.core.states import UpdateState
from orchestrator.db.models import CheckRollup, Component, Incident, IncidentUpdate
from orchestrator.web.source import WebSource

#: days of uptime bars
BAR_DAYS = 90
#: resolved incidents shown under "past incidents", and entries in the feed
PAST_DAYS = 14
#: days ahead a status page announces scheduled maintenance
SCHEDULED_DAYS = 14
FEED_ENTRIES = 50
#: a component state as the public reads it, and how bad it is (a group shows its worst member)
PUBLIC_STATE = {"up": "operational", "degraded": "degraded", "flapping": "degraded", "down": "outage",
                "maintenance": "maintenance", "paused": "unknown", "unknown": "unknown"}
SEVERITY = {"operational": 0, "unknown": 1, "maintenance": 2, "degraded": 3, "outage": 4}
PUBLIC_TEXT = {"operational": "Operational", "degraded": "Degraded performance", "outage": "Outage",
               "maintenance": "Under maintenance", "unknown": "Not monitored"}


@dataclass(frozen=True)
class Day:
    """One uptime bar: a UTC day with its checks and failures (checks 0: no data)."""

    day: str
    checks: int
    failures: int

    @property
    def pct(self) -> float | None:
        return None if not self.checks else 100.0 * (self.checks - self.failures) / self.checks

    @property
    def tone(self) -> str:
        pct = self.pct
        if pct is None:
            return "none"
        return "operational" if pct >= 99.9 else ("degraded" if pct >= 99.0 else "outage")


def _day_of(column, dialect: str):
    """SQL for the UTC day (``YYYY-MM-DD``) of a stored timestamp."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)  # SQLite keeps naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'


def _day_sums(session: Session, ids: list[int], start: datetime, end: datetime | None) -> dict[int, dict[str, tuple[int, int]]]:
    """component id → {day: (checks, failures)} over the rollups in [start, end), in one aggregate."""
    sums: dict[int, dict[str, tuple[int, int]]] = defaultdict(dict)
    if ids:
        day = _day_of(CheckRollup.minute, session.get_bind().dialect.name)
        stmt = (select(CheckRollup.component_id, day, func.sum(CheckRollup.checks), func.sum(CheckRollup.failures))
                .where(CheckRollup.component_id.in_(ids), CheckRollup.minute >= start)
                .group_by(CheckRollup.component_id, day))
        if end is not None:
            stmt = stmt.where(CheckRollup.minute < end)
        for cid, label, checks, failures in session.execute(stmt):
            sums[cid][label] = (int(checks or 0), int(failures or 0))
    return sums


class FinishedDays:
    """Finished days' sums, reused for ``ttl_s`` (monotonic) so a page view reads only today's rollups.

    A finished day's rollups change only when a buffered write lands late (a database outage) or
    retention removes them; the bars then show it within ``ttl_s``. Bounded: ``max_entries`` pages."""

    def __init__(self, ttl_s: float = 300.0, max_entries: int = 64) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._entries: dict[tuple, tuple[float, dict[int, dict[str, tuple[int, int]]]]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, mono: float, build) -> dict[int, dict[str, tuple[int, int]]]:
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] > mono:
            return hit[1]
        value = build()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (mono + self.ttl_s, value)
        return value


#: one per process: pages served by this process share it
FINISHED_DAYS = FinishedDays()


def daily_uptime(session: Session, ids: list[int], now: datetime, days: int = BAR_DAYS, *,
                 mono: float | None = None, cache: FinishedDays | None = None) -> dict[int, list[Day]]:
    """Each component's last ``days`` UTC days, oldest first: finished days from ``cache`` when given
    (one aggregate when it misses), today from its own aggregate."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=days - 1)
    labels = [(first + timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days)]
    if cache is None or mono is None:
        past = _day_sums(session, ids, first, today)
    else:
        key = (str(session.get_bind().url), tuple(sorted(ids)), labels[0])
        past = cache.get(key, mono, lambda: _day_sums(session, ids, first, today))
    current = _day_sums(session, ids, today, None)
    return {cid: [Day(label, *(current.get(cid, {}).get(label) or past.get(cid, {}).get(label) or (0, 0)))
                  for label in labels] for cid in ids}


def _uptime(days: list[Day]) -> float | None:
    checks = sum(d.checks for d in days)
    return None if not checks else 100.0 * (checks - sum(d.failures for d in days)) / checks


def _incidents(session: Session, ids: list[int], display: dict[int, str], now: datetime,
               limit: int) -> list[dict[str, Any]]:
    """Incidents of these components with public updates, newest update first: id, what it affects, its
    public state (its newest update's), and the updates (newest first)."""
    if not ids:
        return []
    rows = session.execute(
        select(IncidentUpdate, Incident.component_id, Incident.opened_at)
        .join(Incident, Incident.id == IncidentUpdate.incident_id)
        .where(IncidentUpdate.public.is_(True), Incident.component_id.in_(ids))
        .order_by(IncidentUpdate.at.desc(), IncidentUpdate.id.desc()).limit(limit * 10)).all()
    incidents: dict[int, dict[str, Any]] = {}
    for update, cid, opened_at in rows:
        entry = incidents.setdefault(update.incident_id, {
            "id": update.incident_id, "affects": display[cid], "opened_at": opened_at, "state": update.state,
            "at": update.at, "updates": []})
        entry["updates"].append({"id": update.id, "at": update.at, "state": update.state, "message": update.message})
    return list(incidents.values())[:limit]


def status_page(source: WebSource, name: str, *, with_bars: bool = True) -> dict[str, Any]:
    """``/status/NAME``: the page's groups with their states and bars (not for the feed), incidents,
    maintenance."""
    now = source.clock.now()
    with source.db.read() as session:
        page = get_page(session, name)
        wanted = [m["component"] for g in page.groups for m in g["components"]]
        rows = {r.name: r for r in session.execute(
            select(Component.id, Component.name, effective_state_sql(now).label("state"),
                   Component.maintenance_until, Component.labels).where(Component.name.in_(wanted)))}
        windows = load_windows(session, WindowKind.MAINTENANCE)
        ids = [r.id for r in rows.values()]
        bars = daily_uptime(session, ids, now, mono=source.clock.monotonic(), cache=FINISHED_DAYS) if with_bars else {}
        display = {rows[m["component"]].id: m["display"] for g in page.groups for m in g["components"]
                   if m["component"] in rows}
        incidents = _incidents(session, ids, display, now, FEED_ENTRIES)
        title, updated_at = page.title, page.updated_at
    groups, maintenance = [], []
    for group in page.groups:
        members = []
        for m in group["components"]:
            row = rows.get(m["component"])
            state = "unknown" if row is None else PUBLIC_STATE.get(row.state, "unknown")
            days = bars.get(row.id, []) if row is not None else []
            members.append({"name": m["display"], "state": state, "text": PUBLIC_TEXT[state], "days": days,
                            "uptime_pct": _uptime(days)})
            window = {"name": m["display"], "until": row.maintenance_until} if row is not None else None
            if window and window["until"] is not None and window["until"] > now and window not in maintenance:
                maintenance.append(window)  # once, even when the component is in two groups
        worst = max((m["state"] for m in members), key=SEVERITY.__getitem__)
        groups.append({"name": group["name"], "state": worst, "text": PUBLIC_TEXT[worst], "components": members})
    overall = max((g["state"] for g in groups), key=SEVERITY.__getitem__, default="unknown")
    active = [i for i in incidents if i["state"] != UpdateState.RESOLVED.value]
    past = [i for i in incidents if i["state"] == UpdateState.RESOLVED.value and i["at"] >= now - timedelta(days=PAST_DAYS)]
    newest = max([updated_at, *(i["at"] for i in incidents)])
    return {"name": name, "title": title, "now": now, "overall": overall, "overall_text": _headline(overall),
            "groups": groups, "active": active, "past": past, "maintenance": maintenance, "days": BAR_DAYS,
            "scheduled": _scheduled(windows, page.groups, rows, now),
            "incidents": incidents, "updated": newest}


def _scheduled(windows: list[Window], groups: list[dict[str, Any]], rows: dict[str, Any],
               now: datetime) -> list[dict[str, Any]]:
    """Maintenance ahead (the next opening of each window within ``SCHEDULED_DAYS``) over the page's
    components, by display name; a window's selector and reason are the operator's and never shown."""
    members = [(m["display"], rows[m["component"]].labels) for g in groups for m in g["components"]
               if m["component"] in rows]
    ahead = []
    for window in windows:
        start = window.next_start(now)
        if start is None or start > now + timedelta(days=SCHEDULED_DAYS):
            continue
        names = list(dict.fromkeys(d for d, labels in members if selects(window.selector, labels)))
        if names:
            end = start + timedelta(seconds=window.duration_s or 0) if window.recurring else window.ends_at
            ahead.append({"names": names, "starts": start, "ends": end, "recurring": window.recurring})
    return sorted(ahead, key=lambda w: w["starts"])


def _headline(state: str) -> str:
    return {"operational": "All systems operational", "degraded": "Some systems degraded",
            "outage": "Some systems are down", "maintenance": "Maintenance in progress",
            "unknown": "Some systems are not monitored"}[state]
