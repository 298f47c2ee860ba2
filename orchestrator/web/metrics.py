"""``/metrics``: Prometheus exposition from a custom collector that reads live state at scrape time.

Nothing is updated per check: each scrape reads the recorder's counters (:mod:`orchestrator.history.stats`,
one lock), the trackers' states, and a few aggregate queries. Series (``*`` = daemon only, absent from
``orchestrator web``, which has no process to ask; ``†`` = one per component, left out with
``--no-metrics-per-component``):

- ``orchestrator_checks_total{component†,outcome}``: in the daemon, checks written since it started; from
  the database, the components' lifetime ``checks_total``/``failures_total``
- ``orchestrator_check_latency_seconds``*, ``orchestrator_check_lateness_seconds``*,
  ``orchestrator_db_write_seconds``* (histograms)
- ``orchestrator_component_state{component,state}``† (0/1, every state), ``orchestrator_components{state}``
- ``orchestrator_component_last_check_timestamp_seconds``†, ``orchestrator_component_last_check_latency_seconds``†
- ``orchestrator_tls_cert_expiry_timestamp_seconds{component}``†: when the certificate its https check last
  saw expires (components whose check never saw one: no series)
- ``orchestrator_push_last_success_timestamp_seconds{component}``†: when each push monitor last received a
  success ping (monitors never pinged: no series); alert on ``time() - … > period + grace``
- ``orchestrator_component_down_total``† and ``orchestrator_component_transitions_total{state}``: from the
  transitions table, so an outage between two scrapes still counts (:mod:`orchestrator.web.event_counts`)
- ``orchestrator_component_check_latency_seconds{component}``*† (histogram), only with
  ``--metrics-component-histograms``: 14 series a component (11 buckets, +Inf, sum, count)
- ``orchestrator_incidents_open{status}``; ``orchestrator_incidents_{opened,reopened,escalated}_total`` and
  ``orchestrator_incidents_resolved_total{resolution}`` from incident events
- ``orchestrator_recovery_actions_total{strategy,outcome}`` (finished attempts by final outcome),
  ``orchestrator_recovery_actions_running{strategy}``, ``orchestrator_recovery_verified_seconds``
  (histogram from the journal: action start → verified healthy)
- ``orchestrator_breaker_state{component,state}``† (0/1), ``orchestrator_breakers{state}``
- ``orchestrator_build_info{version}``, ``orchestrator_ready``, ``orchestrator_database_readable``,
  ``orchestrator_dropped_results_total``, ``orchestrator_view_reliable``, ``orchestrator_daemons_alive``,
  ``orchestrator_db_writes_healthy``*, ``orchestrator_scheduler_running``*
- then ``process_*`` and ``python_*`` (prometheus_client's own collectors, :func:`process_registry`)

OpenMetrics 1.0 is served when the scraper's Accept header asks for it (Prometheus does), the classic
text format otherwise. When the database cannot be read, the scrape still answers with what the process
knows (``orchestrator_ready 0``, ``orchestrator_database_readable 0``, the daemon's own health).

Cost at scrape time: one query over the components (names, effective states, totals, breaker states,
last check), one over open incidents, with per-component series one over the certificates seen and one
over the push pings kept (each monitor's newest success: a scan of ``push_pings``, which retention
bounds), and the journal's figures and the event counts only when their
tables changed (fingerprints); the per-component families are written by the fast path of
:mod:`orchestrator.web.exposition`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from flask import Blueprint, Response, request
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from orchestrator.components.views import effective_state_sql, last_success_ids
from orchestrator.core.errors import first_line
from orchestrator.core.states import ComponentState
from orchestrator.db.models import Component, PushPing
from orchestrator.web.degradation_api import level_metrics
from orchestrator.web.event_counts import EventCounts, EventCountsCache
from orchestrator.web.exposition import ComponentFamily, exposition, openmetrics
from orchestrator.web.journal_figures import JournalFiguresCache
from orchestrator.web.metric_families import (
    Monotonic,
    downs,
    health,
    histogram,
    incidents,
    last_check,
    latency_by_component,
    push_last_success,
    recovery,
    tls_expiry,
)
from orchestrator.web.source import LiveFacts, WebSource
from orchestrator.web.state import app_state
from orchestrator.web.summary import open_incident_counts

log = logging.getLogger("orchestrator.web")
blueprint = Blueprint("metrics", __name__)

BREAKER_STATES = ("closed", "open", "half_open")
_STATES = tuple(s.value for s in ComponentState)
#: what :func:`exposition` writes: the classic text format (prometheus_client >= 0.22 labels its own
#: default "version=1.0.0", which announces the escaping scheme of UTF-8 names this text does not use)
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Extra series from other parts, each ``provider(source) -> metrics``.
METRIC_PROVIDERS: list[Callable[[WebSource], Iterable[Metric]]] = [level_metrics]


def _one_hot_pairs(choices: tuple[str, ...]) -> dict[str, tuple[tuple[str, float], ...]]:
    """state → its series ((state, 1.0 or 0.0) for each choice), shared by every component in it."""
    return {current: tuple((c, 1.0 if c == current else 0.0) for c in choices) for current in choices}


_STATE_PAIRS = _one_hot_pairs(_STATES)
_BREAKER_PAIRS = _one_hot_pairs(BREAKER_STATES)


class OrchestratorCollector:
    """A prometheus_client collector over one web source.

    Invariant it must never break: a family typed ``counter`` never goes backwards from one scrape to
    the next within this process (Prometheus reads a decrease as a restart and counts the whole value
    again). Each counter is therefore read from something that only grows (the recorder's counts,
    append-only rows, journal rows by final outcome), or passed through :class:`Monotonic` when it
    sums rows that can be deleted with their component.
    """

    def __init__(self, source: WebSource, *, per_component: bool = True, component_histograms: bool = False) -> None:
        self.source = source
        self.per_component = per_component
        self.component_histograms = component_histograms and per_component
        self.journal = JournalFiguresCache()
        self.events = EventCountsCache()
        self.fleet = Monotonic()
        self._db_lost = False  # the last scrape could not read the database (said once in the log)

    def describe(self) -> list[Metric]:
        return []  # nothing to describe ahead: every series is read at scrape time

    def collect(self) -> Iterator[Metric]:
        facts: LiveFacts | None = None
        now = self.source.clock.now()
        try:
            facts = self.source.facts()  # from the database in `orchestrator web`
            # fleet totals alone, from the database: counted in SQL, no row per component comes back
            lean = not self.per_component and facts.stats is None and not facts.states
            with self.source.db.read() as session:
                rows = [] if lean else session.execute(
                    select(Component.id, Component.name, effective_state_sql(now), Component.checks_total,
                           Component.failures_total, Component.breaker["state"].as_string(),
                           Component.last_check_at, Component.last_latency_ms)
                    .order_by(Component.name)).all()
                totals = _fleet_totals(session, now) if lean else None
                certificates = [] if lean or not self.per_component else session.execute(
                    select(Component.name, Component.tls_expires_at).where(Component.tls_expires_at.is_not(None))
                    .order_by(Component.name)).all()
                successes = [] if lean or not self.per_component else _push_successes(session)
                open_incidents = open_incident_counts(session)
                journal = self.journal.read(session)
                events = self.events.read(session)
        except SQLAlchemyError as exc:  # what the process knows without the database is still served
            if not self._db_lost:
                log.warning("metrics: database unreadable, serving the process's own series until it is "
                            "back: %s", first_line(exc))
            self._db_lost = True
            yield from health(facts, database_ok=False)
            return
        if self._db_lost:
            log.info("metrics: database readable again")
            self._db_lost = False
        if totals is not None:
            states, breakers, checks, failed = totals
            yield self._check_totals(checks - failed, failed)
            yield from _lean_families(states, breakers)
        else:
            yield from self._checks(facts, rows)
            yield from _histograms(facts)
            states = {name: (facts.states[cid].value if cid in facts.states else state)
                      for cid, name, state, *_ in rows}
            yield from self._one_hot(states, _STATE_PAIRS, _STATE_NAMES)
            breakers = {name: breaker or "closed" for _cid, name, _s, _t, _f, breaker, *_ in rows}
            yield from self._one_hot(breakers, _BREAKER_PAIRS, _BREAKER_NAMES)
            if self.per_component:
                yield from last_check(rows)
                yield from downs(rows, events)
                yield from tls_expiry(certificates)
                yield from push_last_success(successes)
                if self.component_histograms:
                    yield from latency_by_component(rows, self.source.component_latency())
        yield from self._transitions(events)
        yield from incidents(open_incidents, events)
        yield from recovery(journal)
        yield from health(facts, database_ok=True)
        for provider in METRIC_PROVIDERS:
            yield from provider(self.source)

    def _transitions(self, events: EventCounts) -> Iterator[Metric]:
        """Transitions into each state, fleet-wide: a short outage between two scrapes still counts."""
        by_state = Counter()
        for (_cid, state), n in events.transitions.items():
            by_state[state] += n
        family = CounterMetricFamily("orchestrator_component_transitions",
                                     "Component state changes, by the state entered.", labels=["state"])
        for state in _STATES:
            family.add_metric([state], self.fleet.value(("transitions", state), by_state.get(state, 0)))
        yield family

    def _checks(self, facts: LiveFacts, rows) -> Iterator[Metric]:
        """Checks by component (in name order) and outcome: the daemon's since it started, else the
        database's lifetime totals."""
        if facts.stats is not None:
            live: dict[tuple[int, str], int] = facts.stats.checks
            counts = [(name, live.get((cid, "failed"), 0), live.get((cid, "ok"), 0)) for cid, name, *_ in rows]
        else:
            counts = [(name, int(failures or 0), int(total or 0) - int(failures or 0))
                      for _cid, name, _state, total, failures, *_ in rows]
        if self.per_component:
            checks = ComponentFamily("orchestrator_checks", "Health checks by outcome.", "counter", "outcome")
            for name, failed, ok in counts:
                checks.add(name, (("failed", failed), ("ok", ok)))
            yield checks
            return
        yield self._check_totals(sum(ok for _n, _f, ok in counts), sum(failed for _n, failed, _ok in counts))

    def _check_totals(self, ok: int, failed: int) -> Metric:
        """Fleet-wide checks by outcome: a sum over the components there are now, so held monotonic
        (a removed component takes its checks out of the sum)."""
        totals = CounterMetricFamily("orchestrator_checks", "Health checks by outcome.", labels=["outcome"])
        totals.add_metric(["ok"], self.fleet.value(("checks", "ok"), ok))
        totals.add_metric(["failed"], self.fleet.value(("checks", "failed"), failed))
        return totals

    def _one_hot(self, current: dict[str, str], pairs: dict[str, tuple[tuple[str, float], ...]],
                 names: tuple[tuple[str, str], tuple[str, str]]) -> Iterator[Metric]:
        """Counts by state, and (per component) one 0/1 series for each state: Prometheus' enum idiom."""
        yield _by_state(Counter(current.values()), pairs, *names[0])
        if self.per_component:
            one = ComponentFamily(*names[1], "gauge", "state")
            unknown = next(iter(pairs))
            for name, value in current.items():
                one.add(name, pairs.get(value, pairs[unknown]))
            yield one


#: (the totals' name and help, the per-component family's name and help)
_STATE_NAMES = (("orchestrator_components", "Components by state."),
                ("orchestrator_component_state", "1 for the state a component is in, else 0."))
_BREAKER_NAMES = (("orchestrator_breakers", "Recovery breakers by state."),
                  ("orchestrator_breaker_state", "1 for a component's recovery breaker state."))


def _by_state(counts: Counter, pairs: dict, name: str, documentation: str) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=["state"])
    for state in pairs:
        family.add_metric([state], counts.get(state, 0))
    return family


def _push_successes(session) -> list:
    """(name, received_at) of each push monitor's last success ping: the newest success row's id per
    monitor (ix_push_pings_component_id_id), then those rows."""
    return session.execute(select(Component.name, PushPing.received_at).join(PushPing, PushPing.component_id == Component.id)
                           .where(PushPing.id.in_(last_success_ids())).order_by(Component.name)).all()


def _fleet_totals(session, now) -> tuple[Counter, Counter, int, int]:
    """(components by effective state, by breaker state, checks, failed checks), each one aggregate."""
    state = effective_state_sql(now)
    breaker = func.coalesce(Component.breaker["state"].as_string(), "closed")
    states = Counter(dict(session.execute(select(state, func.count()).group_by(state)).all()))
    breakers = Counter(dict(session.execute(select(breaker, func.count()).group_by(breaker)).all()))
    checks, failed = session.execute(select(func.coalesce(func.sum(Component.checks_total), 0),
                                            func.coalesce(func.sum(Component.failures_total), 0))).one()
    return states, breakers, int(checks), int(failed)


def _lean_families(states: Counter, breakers: Counter) -> Iterator[Metric]:
    """The same state totals as the per-component path gives with --no-metrics-per-component."""
    yield _by_state(states, _STATE_PAIRS, *_STATE_NAMES[0])
    yield _by_state(breakers, _BREAKER_PAIRS, *_BREAKER_NAMES[0])


def _histograms(facts: LiveFacts) -> Iterator[Metric]:
    if facts.stats is None:
        return
    yield histogram("orchestrator_check_latency_seconds", "Health check latency.", facts.stats.check_latency_s)
    yield histogram("orchestrator_check_lateness_seconds", "How late checks started against their schedule.",
                     facts.stats.check_lateness_s)
    yield histogram("orchestrator_db_write_seconds", "Duration of one batched database write.",
                     facts.stats.db_write_s)


def registry_for(source: WebSource, *, per_component: bool, component_histograms: bool = False) -> CollectorRegistry:
    """The orchestrator's own series."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OrchestratorCollector(source, per_component=per_component,
                                            component_histograms=component_histograms))
    return registry


def process_registry() -> CollectorRegistry:
    """The process's series (``process_*``: CPU, memory, file descriptors, start time) and the
    interpreter's (``python_info``, ``python_gc_*``), served after the orchestrator's."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def wants_openmetrics(accept: str | None) -> bool:
    """True when the Accept header lists OpenMetrics with a quality above 0 (Prometheus asks for it first)."""
    for item in (accept or "").split(","):
        mime, *params = (part.strip().lower() for part in item.split(";"))
        if mime != "application/openmetrics-text":
            continue
        quality = next((p.removeprefix("q=").strip() for p in params if p.startswith("q=")), "1")
        try:
            if float(quality) > 0:
                return True
        except ValueError:  # a malformed quality: as if absent
            return True
    return False


@blueprint.get("/metrics")
def metrics() -> Response:
    state = app_state()
    registries = state.extras.get("metrics_registries")
    if registries is None:
        registries = state.extras["metrics_registries"] = (registry_for(
            state.source, per_component=state.settings.metrics_per_component,
            component_histograms=state.settings.metrics_component_histograms), process_registry())

    def families() -> Iterator[Metric]:
        for registry in registries:
            yield from registry.collect()

    if wants_openmetrics(request.headers.get("Accept")):
        text = state.cache.get("metrics.om", state.source.version(), lambda: openmetrics(families()))
        return Response(text, content_type=OPENMETRICS_CONTENT_TYPE, headers={"Vary": "Accept"})
    text = state.cache.get("metrics", state.source.version(), lambda: exposition(families()))
    return Response(text, content_type=TEXT_CONTENT_TYPE, headers={"Vary": "Accept"})
