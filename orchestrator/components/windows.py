"""Maintenance windows and notification silences: their schedule, who they cover, and their one writer.

A window covers the components its label selector picks (``team=core``). A ``maintenance`` window
holds them as an operator's ``component maintenance`` does: checks go on, but no incident opens and
no action runs, and the hold is shown with its reason (the named exception of invariant 6). A
``silence`` mutes their notifications only: incidents, recovery and verification carry on (invariants
1-6 untouched; the muted messages are recorded as silenced, invariant 4).

One-off windows run from ``starts_at`` to ``ends_at``. Recurring ones (maintenance only) open at each
time their cron expression names in their time zone (croniter and zoneinfo) and last ``duration_s`` of
elapsed time. Schedules are calendar facts, so they are judged on the wall time of the one injected
clock (``now()``, read once per decision); nothing here waits. Across DST: a start that does not exist
on the day the clocks go forward opens at the first valid time after it (02:30 → 03:00); one that
happens twice when they go back opens once, at the first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.durations import MAX_DURATION_S
from orchestrator.core.errors import InputError, NotFoundError
from orchestrator.core.labels import Selector, parse_selector, selector_text, selects
from orchestrator.db import audit
from orchestrator.db.audit import Actor
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, MaintenanceWindow

#: Longest window (one-off span or recurring duration): the project's cap on any duration.
MAX_WINDOW_S = MAX_DURATION_S
#: Longest reason kept (it is shown on the page, in lists and in hold reasons).
MAX_REASON_CHARS = 200

def _field(value: str, names: tuple[str, ...] = ()) -> str:
    """One cron field: items ``*``, ``V`` or ``V-V``, each with an optional ``/step``, comma-separated."""
    choices = "|".join([value, *names, *(n.lower() for n in names)])
    item = rf"(?:\*|(?:{choices})(?:-(?:{choices}))?)(?:/[1-9][0-9]?)?"
    return rf"{item}(?:,{item}){{0,11}}"


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
#: The cron grammar taken (the API's schema says the same): five fields of numbers in range, names of
#: months and days, ranges, steps and lists, or an @alias. A subset of what croniter reads, so an
#: expression that fits is one it can iterate (a date that never comes, 31 February, is refused apart).
CRON_PATTERN = (
    "^(?:@(?:yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    + " ".join((_field("[0-5]?[0-9]"), _field("[01]?[0-9]|2[0-3]"), _field("0?[1-9]|[12][0-9]|3[01]"),
                _field("0?[1-9]|1[0-2]", _MONTHS), _field("[0-7]", _DAYS)))
    + ")$"
)
_CRON = re.compile(CRON_PATTERN)


class WindowKind(StrEnum):
    MAINTENANCE = "maintenance"  # held as in maintenance: no incidents, no actions
    SILENCE = "silence"  # notifications muted, automation carries on


@dataclass(frozen=True, slots=True)
class Window:
    """A window as the schedule reads it (a plain copy of its row)."""

    id: int
    kind: WindowKind
    selector: Selector
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    cron: str | None = None
    duration_s: float | None = None
    tz: str | None = None
    reason: str | None = None

    @classmethod
    def of(cls, row: MaintenanceWindow) -> Window:
        return cls(row.id, WindowKind(row.kind), parse_selector(row.selector), row.starts_at, row.ends_at,
                   row.cron, row.duration_s, row.tz, row.reason)

    @property
    def recurring(self) -> bool:
        return self.cron is not None

    def active_until(self, now: datetime) -> datetime | None:
        """The end of the occurrence in force at ``now``; None when the window is not open."""
        if not self.recurring:
            assert self.starts_at is not None and self.ends_at is not None
            return self.ends_at if self.starts_at <= now < self.ends_at else None
        start = _previous_start(self._cron(), ZoneInfo(self.tz or "UTC"), now)
        if start is None:
            return None
        end = start + timedelta(seconds=self.duration_s or 0)
        return end if now < end else None

    def next_start(self, now: datetime) -> datetime | None:
        """When the window opens next after ``now`` (None: a one-off that has begun or is over)."""
        if not self.recurring:
            assert self.starts_at is not None
            return self.starts_at if self.starts_at > now else None
        return _next_start(self._cron(), ZoneInfo(self.tz or "UTC"), now)

    def _cron(self) -> str:
        assert self.cron is not None
        return self.cron


def _croniter():  # imported on use: most commands never read a schedule
    from croniter import croniter

    return croniter


def _repeated(local: datetime) -> bool:
    """Whether ``local`` is the second time a wall-clock time happens (the hour the clocks go back)."""
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _previous_start(cron: str, zone: ZoneInfo, now: datetime) -> datetime | None:
    """The latest start at or before ``now`` (UTC), a repeated wall time counted once."""
    return _start(cron, zone, now + timedelta(seconds=1), "get_prev")


def _next_start(cron: str, zone: ZoneInfo, now: datetime) -> datetime | None:
    return _start(cron, zone, now, "get_next")


def _start(cron: str, zone: ZoneInfo, at: datetime, step: str) -> datetime | None:
    """The occurrence before or after ``at``; None when there is none. A stored expression croniter
    cannot iterate (a date that never comes) counts as a window that never opens: it must never stop
    the registry sync that judges every other window and hold (invariant 6)."""
    try:
        it = _croniter()(cron, at.astimezone(zone))
        for _ in range(4):
            local = getattr(it, step)(datetime)
            if not _repeated(local):
                return local.astimezone(UTC)
    except Exception:  # croniter's CroniterBadDateError and kin: nothing to find
        return None
    return None


@dataclass(frozen=True, slots=True)
class Cover:
    """The windows in force over one component: the maintenance one that ends last, and the silence."""

    maintenance: tuple[Window, datetime] | None = None
    silence: tuple[Window, datetime] | None = None

    def hold_reason(self) -> str:
        """``window 3 until 2026-12-13 03:00 UTC, recurring: kernel updates``."""
        assert self.maintenance is not None
        window, until = self.maintenance
        text = f"window {window.id} until {until.strftime('%Y-%m-%d %H:%M')} UTC"
        text += ", recurring" if window.recurring else ""
        return f"{text}: {window.reason}" if window.reason else text


#: The windows open at one moment, each with the end of its occurrence: :func:`open_windows`.
OpenWindows = list[tuple[Window, datetime]]


def open_windows(windows: Iterable[Window], now: datetime) -> OpenWindows:
    """Which of ``windows`` are open at ``now``. Computed once per decision and matched against every
    component with :func:`cover` (a schedule is evaluated once, not once per component)."""
    found = []
    for window in windows:
        until = window.active_until(now)
        if until is not None:
            found.append((window, until))
    return found


def cover(open_now: OpenWindows, labels: Mapping[str, object] | None) -> Cover:
    """The open windows over a component with ``labels``: per kind, the one that ends last."""
    found: dict[WindowKind, tuple[Window, datetime]] = {}
    for window, until in open_now:
        if selects(window.selector, labels) and (window.kind not in found or until > found[window.kind][1]):
            found[window.kind] = (window, until)
    return Cover(found.get(WindowKind.MAINTENANCE), found.get(WindowKind.SILENCE))


def covered_ids(session: Session, open_now: OpenWindows) -> dict[int, tuple[Window, datetime]]:
    """Component id → the open window (of ``open_now``) over it that ends last, each window's selector
    matched in SQL (as ``component list --label`` does), so no component's labels are decoded here."""
    out: dict[int, tuple[Window, datetime]] = {}
    for window, until in open_now:
        picked = select(Component.id).where(*(Component.labels[k].as_string() == v for k, v in window.selector))
        for cid in session.scalars(picked):
            if cid not in out or until > out[cid][1]:
                out[cid] = (window, until)
    return out


def silenced(session: Session, now: datetime, labels_by_name: Mapping[str, Any]) -> dict[str, tuple[int, datetime]]:
    """The components of ``labels_by_name`` a silence mutes at ``now``: name -> (silence id, until); the
    notifier's :data:`~orchestrator.incidents.notifier.SilenceLookup`."""
    silences = open_windows(load_windows(session, WindowKind.SILENCE), now)
    if not silences:
        return {}
    muted = {}
    for name, labels in labels_by_name.items():
        found = cover(silences, labels).silence
        if found is not None:
            muted[name] = (found[0].id, found[1])
    return muted


def load_windows(session: Session, kind: WindowKind | None = None) -> list[Window]:
    """Every window (of ``kind``), oldest first."""
    stmt = select(MaintenanceWindow).order_by(MaintenanceWindow.id)
    if kind is not None:
        stmt = stmt.where(MaintenanceWindow.kind == kind.value)
    return [Window.of(row) for row in session.scalars(stmt)]


def window_view(row: MaintenanceWindow, now: datetime) -> dict[str, Any]:
    """One window as `maintenance list --json`, `silence list --json` and the API show it."""
    window = Window.of(row)
    until = window.active_until(now)
    return {
        "id": row.id, "kind": row.kind, "selector": row.selector, "recurring": window.recurring,
        "cron": row.cron, "duration_s": row.duration_s, "tz": row.tz, "starts_at": row.starts_at,
        "ends_at": row.ends_at, "reason": row.reason, "created_at": row.created_at, "created_by": row.created_by,
        "active": until is not None, "active_until": until, "next_start": window.next_start(now),
    }


def cover_view(found: Cover) -> list[dict[str, Any]]:
    """The windows in force over a component, as its view lists them."""
    return [{"id": w.id, "kind": w.kind.value, "until": until, "recurring": w.recurring, "reason": w.reason}
            for w, until in (pair for pair in (found.maintenance, found.silence) if pair is not None)]


def window_lines(found: Cover) -> tuple[str, ...]:
    """``in maintenance until 2026-12-13 03:00 UTC, recurring: kernel updates (window 3)``, one a window."""
    lines = []
    for pair, what in ((found.maintenance, "in maintenance"), (found.silence, "notifications silenced")):
        if pair is not None:
            window, until = pair
            line = f"{what} until {until.strftime('%Y-%m-%d %H:%M')} UTC" + (", recurring" if window.recurring else "")
            lines.append(f"{line}: {window.reason} (window {window.id})" if window.reason else f"{line} (window {window.id})")
    return tuple(lines)


@dataclass(frozen=True, slots=True)
class WindowRequest:
    """What an operator asked for, as typed (CLI flags or API fields); :func:`validate` checks it."""

    kind: WindowKind
    selector: str
    cron: str | None = None
    duration_s: float | None = None
    tz: str | None = None
    start: str | datetime | None = None
    end: str | datetime | None = None
    for_s: float | None = None
    reason: str | None = None


def validate(req: WindowRequest, now: datetime) -> dict[str, Any]:
    """The row's values for ``req``; InputError naming the field (as the API names it) otherwise."""
    try:
        selector = selector_text(parse_selector(req.selector))
    except ValueError as exc:
        raise InputError(str(exc), field="selector") from None
    zone = _zone(req.tz)
    reason = (req.reason or "").strip() or None
    if reason is not None and (len(reason) > MAX_REASON_CHARS or "\n" in reason):
        raise InputError(f"one line of at most {MAX_REASON_CHARS} characters", field="reason")
    values: dict[str, Any] = {"kind": req.kind.value, "selector": selector, "reason": reason, "tz": req.tz}
    if req.cron is not None:
        if req.kind is WindowKind.SILENCE:
            raise InputError("a silence is one-off (use --for or --start/--end)", field="cron")
        if req.start is not None or req.end is not None or req.for_s is not None:
            raise InputError("a recurring window takes --duration, not --start/--end/--for", field="cron")
        if req.duration_s is None:
            raise InputError("required with cron (e.g. 2h)", field="duration")
        _positive_span(req.duration_s, "duration")
        return {**values, "cron": _cron(req.cron, zone, now), "duration_s": req.duration_s, "tz": req.tz or "UTC"}
    if req.duration_s is not None:
        raise InputError("only with cron (a one-off window takes --start/--end or --for)", field="duration")
    # a start already past means now: the window is open from the moment it is added
    start = now if req.start is None else max(now, _instant(req.start, zone, "start"))
    if req.for_s is not None and req.end is not None:
        raise InputError("give --for or --end, not both", field="for")
    if req.for_s is not None:
        _positive_span(req.for_s, "for")
        # at least the clock's resolution: a positive span below a microsecond is still a window
        end = start + max(timedelta(seconds=req.for_s), timedelta(microseconds=1))
    elif req.end is not None:
        end = _instant(req.end, zone, "end")
    else:
        raise InputError("required: --end, --for, or --cron with --duration", field="end")
    if end <= start:
        raise InputError("must be after the start (and after now)", field="end")
    _positive_span((end - start).total_seconds(), "end")
    return {**values, "starts_at": start, "ends_at": end}


def _zone(tz: str | None) -> ZoneInfo:
    if tz is None:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"unknown time zone {tz!r} (e.g. Europe/Berlin, UTC)", field="tz") from None


def _cron(text: str, zone: ZoneInfo, now: datetime) -> str:
    cron = " ".join(text.split())
    if not _CRON.match(cron) or not _croniter().is_valid(cron):
        raise InputError(f"not a cron expression: {text!r} (five fields, e.g. '0 2 * * SUN')", field="cron")
    if _next_start(cron, zone, now) is None:
        raise InputError(f"{text!r} never comes (e.g. 31 February)", field="cron")
    return cron


def _instant(value: str | datetime, zone: ZoneInfo, field: str) -> datetime:
    """An ISO 8601 time; one without an offset is read in ``zone``."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InputError(f"not a time: {value!r} (ISO 8601, e.g. 2026-12-24T02:00 or with +01:00)",
                             field=field) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def _positive_span(seconds: float, field: str) -> None:
    if not seconds > 0 or seconds > MAX_WINDOW_S:
        raise InputError(f"must be more than 0 and at most {MAX_WINDOW_S / 86400:g} days", field=field)


def time_zones() -> tuple[str, ...]:
    """Every IANA time zone name this machine knows (the API's schema lists them)."""
    from zoneinfo import available_timezones

    return tuple(sorted(available_timezones()))


class WindowService:
    """The one writer of maintenance windows and silences; every change is audited with it."""

    def __init__(self, db: Database, *, clock: Clock = SYSTEM_CLOCK, actor: Actor | None = None) -> None:
        self.db = db
        self.clock = clock
        self.actor = actor or Actor()

    def add(self, req: WindowRequest) -> dict[str, Any]:
        """Validate and store a window; its view."""
        now = self.clock.now()
        values = validate(req, now)
        with self.db.write() as session:
            row = MaintenanceWindow(**values, created_at=now, created_by=self.actor.os_user)
            session.add(row)
            session.flush()
            view = window_view(row, now)
            audit.record(session, self.actor, f"{req.kind.value}-add", f"{req.kind.value}:{row.id}", None,
                         _audited(view), self.clock)
        return view

    def list(self, kind: WindowKind) -> list[dict[str, Any]]:
        """Every window of ``kind``, oldest first (a one-off one that is over is listed until removed)."""
        now = self.clock.now()
        with self.db.read() as session:
            rows = session.scalars(select(MaintenanceWindow).where(MaintenanceWindow.kind == kind.value)
                                   .order_by(MaintenanceWindow.id))
            return [window_view(row, now) for row in rows]

    def remove(self, kind: WindowKind, window_id: int) -> dict[str, Any]:
        """Delete one window; NotFoundError naming ``id`` when there is no such window of ``kind``."""
        now = self.clock.now()
        with self.db.write() as session:
            row = session.get(MaintenanceWindow, window_id)
            if row is None or row.kind != kind.value:
                raise NotFoundError(f"no {kind.value} window with id {window_id}", field="id")
            view = window_view(row, now)
            session.delete(row)
            audit.record(session, self.actor, f"{kind.value}-remove", f"{kind.value}:{window_id}", _audited(view),
                         None, self.clock)
        return view


def _audited(view: dict[str, Any]) -> dict[str, Any]:
    keep = ("kind", "selector", "cron", "duration_s", "tz", "starts_at", "ends_at", "reason")
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in view.items() if k in keep}
