"""The report's view model: plain frozen records built from the database for one time window.

Templates and serialisers receive only these records, never ORM objects. How each figure is computed:

- uptime: :mod:`orchestrator.reports.uptime` (unknown, paused and maintenance time are not judged);
- checks, failures, latency: :mod:`orchestrator.reports.checks` (rollups plus the raw tail);
- incidents, steps, notifications: :mod:`orchestrator.reports.history` (incidents overlapping the window);
- MTTR: mean time from opened to resolved over the window's resolved incidents. Time to detect is not
  knowable from what is recorded, so it is not reported;
- push monitors: their last ping, last success and its run's duration, the next expected success
  (:func:`orchestrator.components.views.push_facts`, as the component views show them);
- pictures (availability timeline, latency, MTTR over time, strategy outcomes): :mod:`orchestrator.reports.figures`
  and each component's ``segments``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import fmean

from sqlalchemy import select

from orchestrator.components.views import ping_facts, push_facts
from orchestrator.components.windows import Window, cover, open_windows, window_lines, window_view
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import NotFoundError
from orchestrator.core.states import IncidentKind, Resolution
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, MaintenanceWindow
from orchestrator.reports.charts import Segment
from orchestrator.reports.checks import CheckFigures, load_check_figures
from orchestrator.reports.figures import Figures, build_figures
from orchestrator.reports.history import IncidentReport, StepReport, load_incidents
from orchestrator.reports.levels import LevelTimeline, load_level_timelines
from orchestrator.reports.uptime import (
    StateTimes,
    component_segments,
    load_timelines,
    times_of,
    watched_until,
)

#: version of the JSON shape (bumped on any incompatible change)
REPORT_VERSION = 1
#: the "unresolved" bucket beside the three resolutions
UNRESOLVED = "unresolved"

__all__ = ["ComponentReport", "IncidentReport", "PushReport", "Report", "StepReport", "Totals", "build_report"]


@dataclass(frozen=True)
class PushReport:
    """A push monitor's pings as they stood at the end of the window (the component views' ``push``)."""

    last_ping_at: datetime | None
    last_ping_kind: str | None  # success | start | fail
    last_exit_status: int | None
    last_success_at: datetime | None
    last_duration_s: float | None  # the last successful run, start ping to success (None without a start)
    next_expected_at: datetime | None  # the next success is late after this plus grace_s
    grace_s: float


@dataclass(frozen=True)
class ComponentReport:
    """One component's figures for the window."""

    name: str
    state: str
    criticality: str
    labels: tuple[tuple[str, str], ...]
    times: StateTimes
    uptime_pct: float | None
    checks: CheckFigures
    incidents: int
    mttr_s: float | None
    segments: tuple[Segment, ...] = ()  # the availability timeline over the window
    #: when the certificate its https check last saw expires (None: not an https check, or none seen)
    tls_expires_at: datetime | None = None
    #: the maintenance windows and silences in force over it at the end of the window, one line each
    windows: tuple[str, ...] = ()
    #: a push monitor's pings (None for polled kinds)
    push: PushReport | None = None


@dataclass(frozen=True)
class Totals:
    """Figures over every incident in the report."""

    incidents: int
    by_resolution: tuple[tuple[str, int], ...]  # (auto|self|manual|removed|unresolved, count), always all five
    actions_executed: int
    actions_verified: int
    escalations: int
    mass_outages: int
    mttr_s: float | None


@dataclass(frozen=True)
class Report:
    """Everything a renderer needs."""

    generated_at: datetime
    since: datetime
    until: datetime
    window_s: float
    component: str | None
    components: tuple[ComponentReport, ...]
    incidents: tuple[IncidentReport, ...]
    totals: Totals
    figures: Figures | None = None
    #: each scope's degradation level over the window (orchestrator.reports.levels)
    levels: tuple[LevelTimeline, ...] = ()
    #: every maintenance window and silence, as components.windows.window_view shows it
    windows: tuple[dict, ...] = ()


def mttr_s(incidents: list[IncidentReport] | tuple[IncidentReport, ...]) -> float | None:
    """Mean seconds from opened to resolved over the resolved ones; None when none was resolved."""
    durations = [i.duration_s for i in incidents if i.resolved_at is not None]
    return round(fmean(durations), 3) if durations else None


def totals_of(incidents: tuple[IncidentReport, ...]) -> Totals:
    counts = Counter(i.resolution if i.resolved_at is not None and i.resolution else UNRESOLVED for i in incidents)
    steps = [s for i in incidents for s in i.steps]
    return Totals(
        incidents=len(incidents),
        by_resolution=tuple((r, counts.get(r, 0)) for r in (*(r.value for r in Resolution), UNRESOLVED)),
        actions_executed=sum(1 for s in steps if s.executed),
        actions_verified=sum(1 for s in steps if s.verified),
        escalations=sum(1 for i in incidents if i.escalated),
        mass_outages=sum(1 for i in incidents if i.kind == IncidentKind.MASS_OUTAGE.value),
        mttr_s=mttr_s(incidents),
    )


#: the stages of build_report, in order, for a progress bar
STAGES = ("components", "state timelines", "check figures", "incidents", "figures")


def build_report(db: Database, since_s: float, *, component: str | None = None,
                 clock: Clock = SYSTEM_CLOCK, progress: Callable[[str], None] | None = None) -> Report:
    """The report for the ``since_s`` seconds up to now, for every component or just ``component``.

    ``progress`` is called with each of :data:`STAGES` as it starts. Raises NotFoundError when
    ``component`` is not registered.
    """
    step = progress or (lambda _stage: None)
    now = clock.now()
    start = now - timedelta(seconds=since_s)
    with db.read() as session:
        step(STAGES[0])
        stmt = select(Component).order_by(Component.name)
        if component is not None:
            stmt = stmt.where(Component.name == component)
        rows = list(session.scalars(stmt))
        if component is not None and not rows:
            raise NotFoundError(f"no component named {component!r}", field="--component")
        only_id = rows[0].id if component is not None else None
        step(STAGES[1])
        timelines = load_timelines(session, start, None if only_id is None else [only_id])
        step(STAGES[2])
        figures = load_check_figures(session, start, only_id)
        step(STAGES[3])
        incidents = tuple(load_incidents(session, start, now, component))
        step(STAGES[4])
        pictures = build_figures(session, incidents, start, now, only_id)
        level_timelines = load_level_timelines(session, start, now) if component is None else ()
        window_rows = list(session.scalars(select(MaintenanceWindow).order_by(MaintenanceWindow.id)))
        windows = open_windows([Window.of(w) for w in window_rows], now)
        window_views = tuple(window_view(w, now) for w in window_rows)
        pings = ping_facts(session, [r.id for r in rows if r.check_kind == "push"])
    by_component: dict[int, list[IncidentReport]] = {}
    for incident in incidents:
        if incident.component_id is not None:
            by_component.setdefault(incident.component_id, []).append(incident)
    components = []
    for row in rows:
        stale_from = watched_until(row.last_check_at, row.interval_s)
        pieces = tuple(component_segments(timelines.get(row.id), row.state, row.created_at, start, now, stale_from))
        times = times_of(pieces)
        own = by_component.get(row.id, [])
        labels = tuple(sorted((str(k), str(v)) for k, v in (row.labels or {}).items()))
        components.append(ComponentReport(
            name=row.name, state=row.state, criticality=row.criticality, labels=labels, times=times,
            uptime_pct=times.uptime_pct, checks=figures.get(row.id, CheckFigures()), incidents=len(own), mttr_s=mttr_s(own),
            segments=pieces, tls_expires_at=row.tls_expires_at,
            windows=window_lines(cover(windows, row.labels)),
            push=PushReport(**push_facts(row, pings[row.id])) if row.id in pings else None,
        ))
    return Report(generated_at=now, since=start, until=now, window_s=since_s, component=component,
                  components=tuple(components), incidents=incidents, totals=totals_of(incidents), figures=pictures,
                  levels=level_timelines, windows=window_views)
