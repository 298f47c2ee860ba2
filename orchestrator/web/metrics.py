"""``/metrics``: Prometheus exposition from a custom collector that reads live state at scrape time.

Nothing is updated per check: each scrape reads the recorder's counters (:mod:`orchestrator.history.stats`,
one lock), the trackers' states, and a few aggregate queries. Series (``*`` = daemon only, absent from
``orchestrator web``, which has no process to ask):

- ``orchestrator_checks_total{component,outcome}``: in the daemon, checks written since it started; from
  the database, the components' lifetime ``checks_total``/``failures_total``
- ``orchestrator_check_latency_seconds``*, ``orchestrator_check_lateness_seconds``*,
  ``orchestrator_db_write_seconds``* (histograms)
- ``orchestrator_component_state{component,state}`` (0/1, every state), ``orchestrator_components{state}``
- ``orchestrator_incidents_open{status}``
- ``orchestrator_recovery_actions_total{strategy,outcome}``, ``orchestrator_recovery_verified_seconds``
  (histogram from the journal: action start → verified healthy)
- ``orchestrator_breaker_state{component,state}`` (0/1), ``orchestrator_breakers{state}``
- ``orchestrator_dropped_results_total``, ``orchestrator_view_reliable``, ``orchestrator_daemons_alive``,
  ``orchestrator_scheduler_running``*

With ``--no-metrics-per-component`` the series labelled by component are left out (the per-state totals
stay), for fleets where one series per component is too many.

Cost at scrape time: one query over the components (names, effective states, totals, breaker states),
one over open incidents, and the journal's figures only when the journal changed
(:mod:`orchestrator.web.journal_figures`); the per-component families are written by the fast path of
:mod:`orchestrator.web.exposition`. Nothing is cached between scrapes but the journal's figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from flask import Blueprint, Response
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from orchestrator.components.views import effective_state_sql
from orchestrator.core.states import ComponentState
from orchestrator.db.models import Component
from orchestrator.history.stats import Histogram
from orchestrator.web.degradation_api import level_metrics
from orchestrator.web.exposition import ComponentFamily, exposition
from orchestrator.web.journal_figures import JournalFiguresCache
from orchestrator.web.source import LiveFacts, WebSource
from orchestrator.web.state import app_state
from orchestrator.web.summary import open_incident_counts

blueprint = Blueprint("metrics", __name__)

BREAKER_STATES = ("closed", "open", "half_open")
_STATES = tuple(s.value for s in ComponentState)

#: Extra series from other parts, each ``provider(source) -> metrics``.
METRIC_PROVIDERS: list[Callable[[WebSource], Iterable[Metric]]] = [level_metrics]


def _one_hot_pairs(choices: tuple[str, ...]) -> dict[str, tuple[tuple[str, float], ...]]:
    """state → its series ((state, 1.0 or 0.0) for each choice), shared by every component in it."""
    return {current: tuple((c, 1.0 if c == current else 0.0) for c in choices) for current in choices}


_STATE_PAIRS = _one_hot_pairs(_STATES)
_BREAKER_PAIRS = _one_hot_pairs(BREAKER_STATES)


class OrchestratorCollector:
    """A prometheus_client collector over one web source."""

    def __init__(self, source: WebSource, *, per_component: bool = True) -> None:
        self.source = source
        self.per_component = per_component
        self.journal = JournalFiguresCache()

    def describe(self) -> list[Metric]:
        return []  # nothing to describe ahead: every series is read at scrape time

    def collect(self) -> Iterator[Metric]:
        facts = self.source.facts()
        now = self.source.clock.now()
        # fleet totals alone, from the database: counted in SQL, no row per component comes back
        lean = not self.per_component and facts.stats is None and not facts.states
        with self.source.db.read() as session:
            rows = [] if lean else session.execute(
                select(Component.id, Component.name, effective_state_sql(now), Component.checks_total,
                       Component.failures_total, Component.breaker["state"].as_string())
                .order_by(Component.name)).all()
            totals = _fleet_totals(session, now) if lean else None
            incidents = open_incident_counts(session)
            journal = self.journal.read(session)
        if totals is not None:
            yield from _lean_families(*totals)
        else:
            yield from self._checks(facts, rows)
            yield from _histograms(facts)
            states = {name: (facts.states[cid].value if cid in facts.states else state)
                      for cid, name, state, *_ in rows}
            yield from self._one_hot(states, _STATE_PAIRS, _STATE_NAMES)
            breakers = {name: breaker or "closed" for _cid, name, _s, _t, _f, breaker in rows}
            yield from self._one_hot(breakers, _BREAKER_PAIRS, _BREAKER_NAMES)
        open_ = GaugeMetricFamily("orchestrator_incidents_open", "Unresolved incidents by status.", labels=["status"])
        for status, n in incidents.items():
            open_.add_metric([status], n)
        yield open_
        done = CounterMetricFamily("orchestrator_recovery_actions", "Recovery step attempts that ran, by outcome.",
                                   labels=["strategy", "outcome"])
        for strategy, status, n in journal.actions:
            done.add_metric([strategy, status], n)
        yield done
        yield _histogram("orchestrator_recovery_verified_seconds",
                         "Seconds from a recovery action's start to its verified success.", journal.verified)
        yield from _daemon(facts)
        for provider in METRIC_PROVIDERS:
            yield from provider(self.source)

    def _checks(self, facts: LiveFacts, rows) -> Iterator[Metric]:
        """Checks by component (in name order) and outcome: the daemon's since it started, else the
        database's lifetime totals."""
        if facts.stats is not None:
            live: dict[tuple[int, str], int] = facts.stats.checks
            counts = [(name, live.get((cid, "failed"), 0), live.get((cid, "ok"), 0)) for cid, name, *_ in rows]
        else:
            counts = [(name, int(failures or 0), int(total or 0) - int(failures or 0))
                      for _cid, name, _state, total, failures, _breaker in rows]
        if self.per_component:
            checks = ComponentFamily("orchestrator_checks", "Health checks by outcome.", "counter", "outcome")
            for name, failed, ok in counts:
                checks.add(name, (("failed", failed), ("ok", ok)))
            yield checks
            return
        totals = CounterMetricFamily("orchestrator_checks", "Health checks by outcome.", labels=["outcome"])
        totals.add_metric(["ok"], sum(ok for _n, _f, ok in counts))
        totals.add_metric(["failed"], sum(failed for _n, failed, _ok in counts))
        yield totals

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


def _fleet_totals(session, now) -> tuple[Counter, Counter, int, int]:
    """(components by effective state, by breaker state, checks, failed checks), each one aggregate."""
    state = effective_state_sql(now)
    breaker = func.coalesce(Component.breaker["state"].as_string(), "closed")
    states = Counter(dict(session.execute(select(state, func.count()).group_by(state)).all()))
    breakers = Counter(dict(session.execute(select(breaker, func.count()).group_by(breaker)).all()))
    checks, failed = session.execute(select(func.coalesce(func.sum(Component.checks_total), 0),
                                            func.coalesce(func.sum(Component.failures_total), 0))).one()
    return states, breakers, int(checks), int(failed)


def _lean_families(states: Counter, breakers: Counter, checks: int, failed: int) -> Iterator[Metric]:
    """The same totals as the per-component path gives with --no-metrics-per-component."""
    totals = CounterMetricFamily("orchestrator_checks", "Health checks by outcome.", labels=["outcome"])
    totals.add_metric(["ok"], checks - failed)
    totals.add_metric(["failed"], failed)
    yield totals
    yield _by_state(states, _STATE_PAIRS, *_STATE_NAMES[0])
    yield _by_state(breakers, _BREAKER_PAIRS, *_BREAKER_NAMES[0])


def _histogram(name: str, documentation: str, hist: Histogram) -> Metric:
    return HistogramMetricFamily(name, documentation, buckets=hist.cumulative(), sum_value=hist.total)


def _histograms(facts: LiveFacts) -> Iterator[Metric]:
    if facts.stats is None:
        return
    yield _histogram("orchestrator_check_latency_seconds", "Health check latency.", facts.stats.check_latency_s)
    yield _histogram("orchestrator_check_lateness_seconds", "How late checks started against their schedule.",
                     facts.stats.check_lateness_s)
    yield _histogram("orchestrator_db_write_seconds", "Duration of one batched database write.",
                     facts.stats.db_write_s)


def _daemon(facts: LiveFacts) -> Iterator[Metric]:
    yield CounterMetricFamily("orchestrator_dropped_results", "Check results not written, every cause together.",
                              value=facts.dropped_results)
    dropped = CounterMetricFamily("orchestrator_recorder_dropped", "Rows the recorder did not write, by kind "
                                  "(results, transitions, rollups) and cause (buffer_full, removed, refused, at_stop).",
                                  labels=["kind", "cause"])
    for name, n in facts.drops.items():
        kind, cause = name.split("_", 1)
        dropped.add_metric([kind, cause], n)
    yield dropped
    if facts.db_writes_failing_s is not None:
        yield GaugeMetricFamily("orchestrator_db_writes_failing_seconds",
                                "How long database writes have been failing (absent while they succeed).",
                                value=facts.db_writes_failing_s)
    yield GaugeMetricFamily("orchestrator_view_reliable", "0 while the orchestrator's own sentinels fail.",
                            value=1.0 if facts.view_reliable else 0.0)
    yield GaugeMetricFamily("orchestrator_daemons_alive", "Daemons with a fresh heartbeat.", value=facts.daemons_alive)
    if facts.scheduler_running is not None:
        yield GaugeMetricFamily("orchestrator_scheduler_running", "1 while the check scheduler runs.",
                                value=1.0 if facts.scheduler_running else 0.0)


def registry_for(source: WebSource, *, per_component: bool) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OrchestratorCollector(source, per_component=per_component))
    return registry


@blueprint.get("/metrics")
def metrics() -> Response:
    state = app_state()
    registry = state.extras.get("metrics_registry")
    if registry is None:
        registry = state.extras["metrics_registry"] = registry_for(
            state.source, per_component=state.settings.metrics_per_component)
    text = state.cache.get("metrics", state.source.version(), lambda: exposition(registry.collect()))
    return Response(text, content_type=CONTENT_TYPE_LATEST)
