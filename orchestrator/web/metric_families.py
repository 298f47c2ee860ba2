"""The families of ``/metrics`` built from what one scrape read (:mod:`orchestrator.web.metrics` reads it).

Each function takes plain values (rows, counts, the daemon's facts) and yields prometheus_client
families; none reads the database or the clock. The per-component ones use the fast writer's families
(:mod:`orchestrator.web.exposition`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from orchestrator import __version__
from orchestrator.history.drops import WRITES_FAILING_SHOWN_S
from orchestrator.history.stats import LATENCY_BUCKETS_S, Histogram
from orchestrator.web.event_counts import INCIDENT_KINDS, EventCounts
from orchestrator.web.exposition import ComponentFamily, ComponentHistogramFamily
from orchestrator.web.journal_figures import JournalFigures
from orchestrator.web.source import LiveFacts


def histogram(name: str, documentation: str, hist: Histogram) -> Metric:
    return HistogramMetricFamily(name, documentation, buckets=hist.cumulative(), sum_value=hist.total)


def last_check(rows) -> Iterator[Metric]:
    """When each component was last checked and how long that check took (components never checked: no series)."""
    at = ComponentFamily("orchestrator_component_last_check_timestamp_seconds",
                         "Unix time of the component's last recorded check.", "gauge")
    latency = ComponentFamily("orchestrator_component_last_check_latency_seconds",
                              "Latency of the component's last recorded check.", "gauge")
    for _cid, name, _state, _t, _f, _breaker, last_at, last_ms in rows:
        if last_at is not None:
            at.add_value(name, last_at.timestamp())
        if last_ms is not None:
            latency.add_value(name, last_ms / 1000.0)
    yield at
    yield latency


def _timestamps(name: str, documentation: str, rows) -> Iterator[Metric]:
    """A per-component gauge of Unix times from (name, aware datetime) rows."""
    family = ComponentFamily(name, documentation, "gauge")
    for component, at in rows:
        family.add_value(component, at.timestamp())
    yield family


def tls_expiry(rows) -> Iterator[Metric]:
    """When the certificate each https component serves expires, as (name, expires_at) rows."""
    return _timestamps("orchestrator_tls_cert_expiry_timestamp_seconds",
                       "Unix time at which the TLS certificate the component's check last saw expires.", rows)


def push_last_success(rows) -> Iterator[Metric]:
    """When each push monitor last received a success ping, as (name, received_at) rows (never: no series)."""
    return _timestamps("orchestrator_push_last_success_timestamp_seconds",
                       "Unix time of the push monitor's last success ping.", rows)


def downs(rows, events: EventCounts) -> Iterator[Metric]:
    """Per component, how many times it went down (every component, zeros included)."""
    family = ComponentFamily("orchestrator_component_down", "Times the component went down (transitions into down).",
                             "counter")
    for cid, name, *_ in rows:
        family.add_value(name, events.transitions.get((cid, "down"), 0))
    yield family


def latency_by_component(rows, latency: dict[int, Histogram] | None) -> Iterator[Metric]:
    """``orchestrator_component_check_latency_seconds{component,le}`` (daemon only: 14 series a component)."""
    if latency is None:
        return
    family = ComponentHistogramFamily("orchestrator_component_check_latency_seconds",
                                      "Health check latency, per component.", LATENCY_BUCKETS_S)
    for cid, name, *_ in rows:
        hist = latency.get(cid)
        if hist is not None:
            family.add(name, [n for _le, n in hist.cumulative()], hist.total)
    yield family


def incidents(open_: dict[str, int], events: EventCounts) -> Iterator[Metric]:
    gauge = GaugeMetricFamily("orchestrator_incidents_open", "Unresolved incidents by status.", labels=["status"])
    for status, n in open_.items():
        gauge.add_metric([status], n)
    yield gauge
    for kind in INCIDENT_KINDS:
        yield CounterMetricFamily(f"orchestrator_incidents_{kind}", f"Incidents {kind} (from incident events).",
                                  value=events.incidents(kind))
    resolved = CounterMetricFamily("orchestrator_incidents_resolved", "Incidents resolved, by resolution.",
                                   labels=["resolution"])
    for resolution, n in events.resolved().items():
        resolved.add_metric([resolution], n)
    yield resolved


def recovery(journal: JournalFigures) -> Iterator[Metric]:
    done = CounterMetricFamily("orchestrator_recovery_actions", "Recovery step attempts that ran, by final outcome.",
                               labels=["strategy", "outcome"])
    for strategy, status, n in journal.actions:
        done.add_metric([strategy, status], n)
    yield done
    running = GaugeMetricFamily("orchestrator_recovery_actions_running", "Recovery step attempts running now.",
                                labels=["strategy"])
    for strategy, n in journal.running:
        running.add_metric([strategy], n)
    yield running
    yield histogram("orchestrator_recovery_verified_seconds",
                     "Seconds from a recovery action's start to its verified success.", journal.verified)


def ready(facts: LiveFacts | None, *, database_ok: bool) -> bool:
    """What /readyz decides (orchestrator.web.health): the instance lock held, the database readable,
    the view reliable, and database writes not failing for WRITES_FAILING_SHOWN_S or more."""
    if facts is None or not database_ok or facts.lock_lost is not None or not facts.view_reliable:
        return False
    failing_s = facts.db_writes_failing_s
    return not (facts.db_writes_healthy is False and failing_s is not None and failing_s >= WRITES_FAILING_SHOWN_S)


def health(facts: LiveFacts | None, *, database_ok: bool) -> Iterator[Metric]:
    """The orchestrator's own health; ``facts`` None when even they could not be read (the database is
    where `orchestrator web` reads them)."""
    info = GaugeMetricFamily("orchestrator_build_info", "The orchestrator's version (always 1).", labels=["version"])
    info.add_metric([__version__], 1.0)
    yield info
    yield GaugeMetricFamily("orchestrator_ready", "1 when /readyz passes (lock held, database readable, view "
                            "reliable, writes not failing).", value=1.0 if ready(facts, database_ok=database_ok) else 0.0)
    yield GaugeMetricFamily("orchestrator_database_readable", "0 when this scrape could not read the database.",
                            value=1.0 if database_ok else 0.0)
    if facts is None:
        return
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
    if facts.db_writes_healthy is not None:
        yield GaugeMetricFamily("orchestrator_db_writes_healthy", "0 while the recorder's database writes fail.",
                                value=1.0 if facts.db_writes_healthy else 0.0)
    if facts.scheduler_running is not None:
        yield GaugeMetricFamily("orchestrator_scheduler_running", "1 while the check scheduler runs.",
                                value=1.0 if facts.scheduler_running else 0.0)


class Monotonic:
    """Keeps a sum of rows that can be deleted from going backwards within this process.

    Invariant it must never break: for one key, each value it returns is >= the one before.

    When the raw value drops (rows went with a removed component), the drop is kept as an offset, so
    the series stays where it was and grows again from there (increments hidden by the same drop are
    lost: the price of never going backwards). A new process starts from the raw value, as a restarted
    exporter does.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[object, tuple[float, float]] = {}  # key → (last raw value, offset)

    def value(self, key: object, raw: float) -> float:
        with self._lock:
            last, offset = self._last.get(key, (raw, 0.0))
            if raw < last:
                offset += last - raw
            self._last[key] = (raw, offset)
            return raw + offset
