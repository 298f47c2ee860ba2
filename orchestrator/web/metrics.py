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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from flask import Blueprint, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import case, func, select

from orchestrator.components.views import effective_state_sql
from orchestrator.core.states import AttemptStatus, ComponentState
from orchestrator.db.models import Component, JournalEntry
from orchestrator.history.stats import Histogram
from orchestrator.web.source import LiveFacts, WebSource
from orchestrator.web.state import app_state
from orchestrator.web.summary import open_incident_counts

blueprint = Blueprint("metrics", __name__)

#: action → verified buckets, seconds
VERIFIED_BUCKETS_S = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
BREAKER_STATES = ("closed", "open", "half_open")
_STATES = [s.value for s in ComponentState]

#: Extra series from other parts, each ``provider(source) -> metrics``. The degradation level's
#: provider is appended here when that part is wired in.
METRIC_PROVIDERS: list[Callable[[WebSource], Iterable[Metric]]] = []


class OrchestratorCollector:
    """A prometheus_client collector over one web source."""

    def __init__(self, source: WebSource, *, per_component: bool = True) -> None:
        self.source = source
        self.per_component = per_component

    def describe(self) -> list[Metric]:
        return []  # nothing to describe ahead: every series is read at scrape time

    def collect(self) -> Iterator[Metric]:
        facts = self.source.facts()
        now = self.source.clock.now()
        with self.source.db.read() as session:
            rows = session.execute(select(Component.id, Component.name, effective_state_sql(now),
                                          Component.checks_total, Component.failures_total,
                                          Component.breaker)).all()
            incidents = open_incident_counts(session)
            actions = session.execute(select(JournalEntry.strategy, JournalEntry.status, func.count())
                                      .where(JournalEntry.executed.is_(True))
                                      .group_by(JournalEntry.strategy, JournalEntry.status)).all()
            verified = _verified_histogram(session)
        names = {cid: name for cid, name, *_ in rows}
        states = {cid: (facts.states[cid].value if cid in facts.states else state) for cid, _n, state, *_ in rows}
        yield from self._checks(facts, rows, names)
        yield from _histograms(facts)
        yield from self._states(names, states)
        yield from self._breakers(rows)
        open_ = GaugeMetricFamily("orchestrator_incidents_open", "Unresolved incidents by status.", labels=["status"])
        for status, n in incidents.items():
            open_.add_metric([status], n)
        yield open_
        done = CounterMetricFamily("orchestrator_recovery_actions", "Recovery step attempts that ran, by outcome.",
                                   labels=["strategy", "outcome"])
        for strategy, status, n in actions:
            done.add_metric([strategy, status], n)
        yield done
        yield _histogram("orchestrator_recovery_verified_seconds",
                         "Seconds from a recovery action's start to its verified success.", verified)
        yield from _daemon(facts)
        for provider in METRIC_PROVIDERS:
            yield from provider(self.source)

    def _checks(self, facts: LiveFacts, rows, names: dict[int, str]) -> Iterator[Metric]:
        checks = CounterMetricFamily("orchestrator_checks", "Health checks by outcome.",
                                     labels=["component", "outcome"] if self.per_component else ["outcome"])
        if facts.stats is not None:  # the daemon's own counts since it started
            counts = {(names.get(cid, str(cid)), outcome): n for (cid, outcome), n in facts.stats.checks.items()}
        else:  # the database's lifetime totals
            counts = {}
            for _cid, name, _state, total, failures, _breaker in rows:
                counts[(name, "ok")], counts[(name, "failed")] = int(total or 0) - int(failures or 0), int(failures or 0)
        if self.per_component:
            for (name, outcome), n in sorted(counts.items()):
                checks.add_metric([name, outcome], n)
        else:
            totals = Counter()
            for (_name, outcome), n in counts.items():
                totals[outcome] += n
            for outcome in ("ok", "failed"):
                checks.add_metric([outcome], totals[outcome])
        yield checks

    def _states(self, names: dict[int, str], states: dict[int, str]) -> Iterator[Metric]:
        current = {name: states[cid] for cid, name in names.items()}
        yield from _one_hot(current, _STATES, ("orchestrator_components", "Components by state."),
                            ("orchestrator_component_state", "1 for the state a component is in, else 0."),
                            self.per_component)

    def _breakers(self, rows) -> Iterator[Metric]:
        current = {name: (breaker or {}).get("state", "closed") for _cid, name, _s, _t, _f, breaker in rows}
        yield from _one_hot(current, BREAKER_STATES, ("orchestrator_breakers", "Recovery breakers by state."),
                            ("orchestrator_breaker_state", "1 for a component's recovery breaker state."),
                            self.per_component)


def _one_hot(current: dict[str, str], choices, totals: tuple[str, str], each: tuple[str, str],
             per_component: bool) -> Iterator[Metric]:
    """Counts by state, and (per component) one 0/1 series for each state: Prometheus' enum idiom."""
    counts = Counter(current.values())
    agg = GaugeMetricFamily(*totals, labels=["state"])
    for state in choices:
        agg.add_metric([state], counts.get(state, 0))
    yield agg
    if per_component:
        one = GaugeMetricFamily(*each, labels=["component", "state"])
        for name, value in current.items():
            for state in choices:
                one.add_metric([name, state], 1.0 if state == value else 0.0)
        yield one


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
    yield CounterMetricFamily("orchestrator_dropped_results", "Check results dropped during database outages.",
                              value=facts.dropped_results)
    yield GaugeMetricFamily("orchestrator_view_reliable", "0 while the orchestrator's own sentinels fail.",
                            value=1.0 if facts.view_reliable else 0.0)
    yield GaugeMetricFamily("orchestrator_daemons_alive", "Daemons with a fresh heartbeat.", value=facts.daemons_alive)
    if facts.scheduler_running is not None:
        yield GaugeMetricFamily("orchestrator_scheduler_running", "1 while the check scheduler runs.",
                                value=1.0 if facts.scheduler_running else 0.0)


def _verified_histogram(session) -> Histogram:
    """Bucket counts of start → finish of verified actions, computed in one aggregate statement."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        seconds = (func.julianday(JournalEntry.finished_at) - func.julianday(JournalEntry.started_at)) * 86400.0
    else:
        seconds = func.extract("epoch", JournalEntry.finished_at - JournalEntry.started_at)
    columns = [func.count(), func.coalesce(func.sum(seconds), 0.0)]
    columns += [func.coalesce(func.sum(case((seconds <= b, 1), else_=0)), 0) for b in VERIFIED_BUCKETS_S]
    stmt = select(*columns).where(JournalEntry.executed.is_(True), JournalEntry.status == AttemptStatus.SUCCEEDED.value,
                                  JournalEntry.verification["passed"].as_boolean().is_(True),
                                  JournalEntry.started_at.is_not(None), JournalEntry.finished_at.is_not(None))
    n, total, *cumulative = session.execute(stmt).one()
    counts, previous = [], 0
    for running in [*cumulative, n]:
        counts.append(int(running) - previous)
        previous = int(running)
    return Histogram(VERIFIED_BUCKETS_S, counts, float(total or 0.0), int(n))


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
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
