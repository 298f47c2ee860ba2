"""``/metrics``: counters that never go backwards, the per-component series, OpenMetrics, the process's own
series, and a live scrape of the real daemon checked by Prometheus' own ``promtool``.

The app runs over a real migrated database on both backends (``orchestrator web`` mode), driven by the
real incident lifecycle and step journal; the daemon runs for real (in a thread, or as a process with
``--http`` on a loopback port) against a real loopback health endpoint.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry as ComponentRegistry
from orchestrator.core.clock import FakeClock
from orchestrator.core.states import AttemptStatus, IncidentStatus, Resolution
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from orchestrator.db.models import Component, Incident, StateTransition
from orchestrator.incidents import lifecycle, status
from orchestrator.recovery import journal
from orchestrator.web.app import create_app
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.daemon_helpers import poll, running_daemon, spawn
from tests.servers import LoopbackHTTPServer
from tests.test_reports import _component

PROMTOOL_ENV = "ORCHESTRATOR_TEST_PROMTOOL"


def promtool() -> str:
    """promtool's path; without it these tests skip, or fail when ORCHESTRATOR_TEST_PROMTOOL=required (CI)."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get(PROMTOOL_ENV) == "required":
            pytest.fail(f"promtool is required ({PROMTOOL_ENV}=required) and not installed (apt-get install prometheus)")
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return path


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _counters(text: str) -> dict[tuple, float]:
    """Every sample of every counter family: (sample name, labels) → value."""
    out = {}
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(families: dict, name: str, **labels: str) -> float | None:
    family = families.get(name)
    for s in family.samples if family else ():
        if s.labels == labels and not s.name.endswith("_created"):
            return s.value
    return None


def test_counters_never_go_backwards_while_an_incident_is_worked(db: Database) -> None:
    """open → recovering (a step running) → step finished → resolved, a scrape after each move: no counter
    falls, none disappears, and incidents opened/resolved and actions by final outcome are counted.
    (Before: no ``*_opened_total`` at all, and ``recovery_actions_total{outcome="running"}`` went 1 → absent.)"""
    now = datetime.now(UTC)
    with db.write() as session:
        session.add(_component("api", now))
    with db.read() as session:
        cid = session.scalars(select(Component.id)).one()
    client = create_app(DatabaseSource(db, clock=FakeClock(now)), WebSettings()).test_client()
    scrapes = [client.get("/metrics").get_data(as_text=True)]

    def step(move) -> None:
        move()
        scrapes.append(client.get("/metrics").get_data(as_text=True))

    def open_() -> None:
        with db.write() as session:
            assert lifecycle.open_incident(session, component_id=cid, component_name="api", at=now, reason="down")

    def incident() -> Incident:
        with db.read() as session:
            return session.scalars(select(Incident)).one()

    def recovering() -> None:
        with db.write() as session:
            assert status.transition(session, incident().id, IncidentStatus.OPEN, IncidentStatus.RECOVERING, now=now)
        assert journal.claim(db, incident_id=incident().id, component_id=cid, step_index=0, attempt=1,
                             strategy="restart", owner="test", now=now)

    def finished() -> None:
        with db.read() as session:
            entry_id = journal.running_rows(session, incident().id)[0].id
        assert journal.finish(db, entry_id, status=AttemptStatus.SUCCEEDED, now=now + timedelta(seconds=3),
                              verification={"mode": "check", "passed": True})

    def resolved() -> None:
        with db.write() as session:
            row = session.get(Incident, incident().id)
            assert lifecycle.resolve(session, row, at=now + timedelta(seconds=4), resolution=Resolution.AUTO)

    for move in (open_, recovering, finished, resolved):
        step(move)
    series = [_counters(text) for text in scrapes]
    for before, after in zip(series, series[1:], strict=False):
        for key, value in before.items():
            assert key in after, f"counter series {key} disappeared"
            assert after[key] >= value, f"counter {key} went from {value} to {after[key]}"
    running = [_value(_families(t), "orchestrator_recovery_actions_running", strategy="restart") for t in scrapes]
    assert running == [None, None, 1.0, None, None]  # a gauge: it may fall
    assert all(not any(dict(labels).get("outcome") == "running" for _n, labels in s) for s in series)
    last = _families(scrapes[-1])
    assert _value(last, "orchestrator_incidents_opened") == 1
    assert _value(last, "orchestrator_incidents_resolved", resolution="auto") == 1
    assert _value(last, "orchestrator_incidents_resolved", resolution="manual") == 0
    assert _value(last, "orchestrator_recovery_actions", strategy="restart", outcome="succeeded") == 1
    opened = [_value(_families(t), "orchestrator_incidents_opened") for t in scrapes]
    assert opened == [0, 1, 1, 1, 1]


def test_an_outage_between_two_scrapes_leaves_a_trace(db: Database) -> None:
    """down and up again between two scrapes: the state gauge shows ``up`` both times, the component's
    down counter and the fleet's transitions counter moved (before: no trace at all)."""
    now = datetime.now(UTC)
    with db.write() as session:
        session.add(_component("api", now, state="up"))
    client = create_app(DatabaseSource(db, clock=FakeClock(now)), WebSettings()).test_client()
    first = _families(client.get("/metrics").get_data(as_text=True))
    with db.write() as session:
        api = session.scalars(select(Component)).one()
        session.add_all([StateTransition(component_id=api.id, at=now, from_state="up", to_state="down"),
                         StateTransition(component_id=api.id, at=now, from_state="down", to_state="up")])
    second = _families(client.get("/metrics").get_data(as_text=True))
    for families in (first, second):
        assert _value(families, "orchestrator_component_state", component="api", state="up") == 1
    assert _value(first, "orchestrator_component_down", component="api") == 0
    assert _value(second, "orchestrator_component_down", component="api") == 1
    assert _value(second, "orchestrator_component_transitions", state="down") == 1
    lean = create_app(DatabaseSource(db, clock=FakeClock(now)), WebSettings(metrics_per_component=False))
    text = lean.test_client().get("/metrics").get_data(as_text=True)
    assert 'component="' not in text and _value(_families(text), "orchestrator_component_transitions", state="down") == 1


def test_fleet_transitions_do_not_fall_when_a_component_is_removed(db: Database) -> None:
    """Removing a component deletes its transitions; the fleet-wide counter keeps its value."""
    now = datetime.now(UTC)
    with db.write() as session:
        session.add_all([_component("a", now), _component("b", now)])
        session.flush()
        for row in session.scalars(select(Component)):
            session.add(StateTransition(component_id=row.id, at=now, from_state="up", to_state="down"))
    client = create_app(DatabaseSource(db, clock=FakeClock(now)), WebSettings()).test_client()
    before = _value(_families(client.get("/metrics").get_data(as_text=True)), "orchestrator_component_transitions",
                    state="down")
    ComponentRegistry(db).remove("a")
    after = _families(client.get("/metrics").get_data(as_text=True))
    assert before == 2 and _value(after, "orchestrator_component_transitions", state="down") == 2
    assert _value(after, "orchestrator_component_down", component="a") is None


def test_openmetrics_when_asked_and_the_process_series(db: Database) -> None:
    """``Accept: application/openmetrics-text`` gets OpenMetrics (before: ignored); both formats carry
    ``process_*``, ``python_*`` and ``orchestrator_build_info``."""
    now = datetime.now(UTC)
    with db.write() as session:
        session.add(_component("api", now, last_check_at=now, last_latency_ms=12.5))
    client = create_app(DatabaseSource(db, clock=FakeClock(now)), WebSettings()).test_client()
    accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75," \
             "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"  # what Prometheus 2.x sends
    om = client.get("/metrics", headers={"Accept": accept})
    assert om.content_type.startswith("application/openmetrics-text; version=1.0.0")
    text = om.get_data(as_text=True)
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}
    plain = client.get("/metrics")
    assert plain.content_type.startswith("text/plain; version=0.0.4")
    for parsed in (families, _families(plain.get_data(as_text=True))):
        for name in ("process_cpu_seconds", "process_resident_memory_bytes", "python_info", "python_gc_objects_collected",
                     "orchestrator_build_info", "orchestrator_incidents_opened", "orchestrator_ready"):
            assert name in parsed, name
        assert _value(parsed, "orchestrator_component_last_check_latency_seconds", component="api") == 0.0125
        assert _value(parsed, "orchestrator_component_last_check_timestamp_seconds",
                      component="api") == pytest.approx(now.timestamp(), abs=1e-3)
    assert families["orchestrator_incidents_opened"].type == "counter"
    from orchestrator.web.metrics import wants_openmetrics

    assert not wants_openmetrics("text/plain") and not wants_openmetrics(None)
    assert not wants_openmetrics("application/openmetrics-text;q=0")
    assert not wants_openmetrics("application/openmetrics-text; q=0.0; version=1.0.0, text/plain")
    assert wants_openmetrics("text/plain;q=0.5, Application/OpenMetrics-Text; version=1.0.0; q=0.9")


def test_the_daemon_serves_per_component_latency_histograms_when_switched_on(tmp_path) -> None:
    """The real daemon (in a thread) with the switch on serves one latency histogram per component;
    with it off (the default) the family is absent."""
    db_url = f"sqlite:///{tmp_path / 'live.db'}"
    database = Database(db_url)
    ensure_schema(database)
    with LoopbackHTTPServer() as server:
        ComponentRegistry(database).add(ComponentSpec(name="shop", url=server.url, interval="500ms", timeout="400ms"))
        for switch in (True, False):
            web = WebSettings(metrics_component_histograms=switch)
            with running_daemon(db_url, http="127.0.0.1:0", web=web) as daemon:
                poll(lambda d=daemon: d.web is not None, 10)

                def scrape(base=daemon.web.url) -> dict:
                    with urllib.request.urlopen(base + "metrics", timeout=10) as response:
                        return _families(response.read().decode())

                families = poll(lambda: (m := scrape()) and (_value(
                    m, "orchestrator_checks", component="shop", outcome="ok") or 0) > 0 and m, 30)
                if switch:
                    family = families["orchestrator_component_check_latency_seconds"]
                    count = next(s.value for s in family.samples
                                 if s.name.endswith("_count") and s.labels == {"component": "shop"})
                    assert count >= 1
                else:
                    assert "orchestrator_component_check_latency_seconds" not in families
                assert _value(families, "orchestrator_db_writes_healthy") == 1
    database.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_promtool_checks_a_live_scrape_of_the_daemon(tmp_path) -> None:
    """``orchestrator run --http`` as a real process; its /metrics passes ``promtool check metrics`` with no
    lint finding (promtool reads the classic text format; the OpenMetrics answer goes through the strict
    OpenMetrics parser instead)."""
    tool = promtool()
    db_url = f"sqlite:///{tmp_path / 'live.db'}"
    database = Database(db_url)
    ensure_schema(database)
    port = _free_port()
    with LoopbackHTTPServer() as server:
        ComponentRegistry(database).add(ComponentSpec(name="shop", url=server.url, interval="500ms", timeout="400ms"))
        proc = spawn(["--db", db_url, "run", "--http", f"127.0.0.1:{port}", "--metrics-component-histograms",
                      "--for", "120s"], tmp_path / "home")
        try:
            def scrape(accept: str = "text/plain") -> str:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Accept": accept})
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        return response.read().decode()
                except OSError:
                    return ""

            text = poll(lambda: (t := scrape()) and "orchestrator_component_check_latency_seconds_bucket" in t and t, 60)
            om = scrape("application/openmetrics-text; version=1.0.0")
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    database.dispose()
    assert "process_cpu_seconds_total" in text and "orchestrator_build_info{" in text
    checked = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), \
        checked.stdout + checked.stderr
    families = {f.name: f for f in openmetrics_families(om)}
    assert families["orchestrator_component_check_latency_seconds"].type == "histogram"
    assert families["process_cpu_seconds"].type == "counter"


def test_the_shipped_alert_rules_pass_promtool() -> None:
    """deploy/prometheus/alerts.yml is valid and its unit tests (alerts_test.yml) pass."""
    tool = promtool()
    here = os.path.join(os.path.dirname(__file__), "..", "deploy", "prometheus")
    checked = subprocess.run([tool, "check", "rules", "alerts.yml"], cwd=here, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([tool, "test", "rules", "alerts_test.yml"], cwd=here, capture_output=True, text=True,
                            timeout=60)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_the_dashboard_and_the_rules_only_name_series_that_exist(db: Database) -> None:
    """Every orchestrator_* name in the Grafana dashboard and the alert rules is served (a renamed series
    would leave a blank panel or an alert that never fires)."""
    now = datetime.now(UTC)
    with db.write() as session:
        session.add(_component("api", now, last_check_at=now, last_latency_ms=1.0))
    text = create_app(DatabaseSource(db, clock=FakeClock(now)), WebSettings()).test_client().get(
        "/metrics").get_data(as_text=True)
    typed = set(re.findall(r"^# TYPE (\w+) ", text, re.MULTILINE))  # families with no series yet included
    daemon_only = {"orchestrator_check_latency_seconds", "orchestrator_check_lateness_seconds",
                   "orchestrator_db_write_seconds", "orchestrator_component_check_latency_seconds",
                   "orchestrator_db_writes_healthy", "orchestrator_scheduler_running",
                   "orchestrator_degradation_level", "orchestrator_degradation_level_state",
                   "orchestrator_degradation_override",
                   "orchestrator_db_writes_failing_seconds"}  # and this one only while writes fail
    served = {f"{n}{suffix}" for n in typed | daemon_only for suffix in ("", "_total", "_bucket", "_sum", "_count")}
    root = os.path.join(os.path.dirname(__file__), "..", "deploy")
    with open(os.path.join(root, "grafana", "orchestrator.json")) as f:
        dashboard = json.load(f)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    with open(os.path.join(root, "prometheus", "alerts.yml")) as f:
        exprs.append(f.read())
    names = {m for e in exprs for m in re.findall(r"\b(orchestrator_[a-z_]+|process_[a-z_]+)\b", e)}
    assert names and names <= served, sorted(names - served)
    assert dashboard["panels"] and all(p.get("targets") for p in dashboard["panels"] if p["type"] != "row")


def test_the_per_component_histogram_text_is_what_prometheus_client_writes() -> None:
    """ComponentHistogramFamily's own writer gives byte for byte generate_latest's text, odd names escaped."""
    from prometheus_client import generate_latest
    from prometheus_client.core import HistogramMetricFamily

    from orchestrator.history.stats import LATENCY_BUCKETS_S, Histogram
    from orchestrator.web.exposition import ComponentHistogramFamily, exposition

    fast = ComponentHistogramFamily("x_latency_seconds", "Latency \\ per\ncomponent.", LATENCY_BUCKETS_S)
    generic = HistogramMetricFamily("x_latency_seconds", "Latency \\ per\ncomponent.", labels=["component"])
    for name, values in (("a", [0.001, 0.3, 7.0]), ('odd"name\\x\n', [20.0]), ("empty", [])):
        hist = Histogram(LATENCY_BUCKETS_S)
        for v in values:
            hist.observe(v)
        fast.add(name, [n for _le, n in hist.cumulative()], hist.total)
        generic.add_metric([name], hist.cumulative(), hist.total)

    class One:
        def collect(self):
            return [generic]

    assert exposition([fast]) == generate_latest(One())
    assert [s[:3] for s in fast.samples] == [s[:3] for s in generic.samples]


@pytest.mark.parametrize("per_component", [True, False])
def test_the_fast_openmetrics_text_is_what_prometheus_client_writes(db: Database, per_component: bool) -> None:
    """OpenMetrics through the app's own writer gives byte for byte prometheus_client's OpenMetrics output,
    per-component histograms and a name needing escapes included."""
    from prometheus_client.openmetrics.exposition import generate_latest

    from orchestrator.history.stats import LATENCY_BUCKETS_S, Histogram
    from orchestrator.web.exposition import openmetrics
    from orchestrator.web.metrics import registry_for
    from tests.test_reports import seed

    now = datetime.now(UTC)
    seed(db, now)
    with db.write() as session:
        session.add(_component('odd"name\\x', now, last_check_at=now, last_latency_ms=3.0))
    with db.read() as session:
        ids = list(session.scalars(select(Component.id)))
    latency = {cid: Histogram(LATENCY_BUCKETS_S) for cid in ids}
    for i, hist in enumerate(latency.values()):
        hist.observe(0.01 * (i + 1))

    class Checked(DatabaseSource):  # a daemon's view: every component checked once
        def component_latency(self):
            return latency

    registry = registry_for(Checked(db, clock=FakeClock(now)), per_component=per_component, component_histograms=True)
    fast = openmetrics(registry.collect())
    assert fast == generate_latest(registry)
    assert (b'orchestrator_component_check_latency_seconds_bucket{component="odd\\"name\\\\x",le="0.005"}' in fast) \
        is per_component
    assert fast.endswith(b"# EOF\n") and fast.count(b"# EOF") == 1


@pytest.mark.pg
def test_a_scrape_during_a_database_outage_still_answers_and_says_so(pg_schema_url: str) -> None:
    """PostgreSQL cut behind a TCP proxy under the real daemon: /metrics keeps answering 200 with
    ``orchestrator_database_readable 0``, ``orchestrator_ready 0`` and the recorder's failing writes
    (``orchestrator_db_writes_healthy 0``: what OrchestratorWriteFailures fires on), then recovers.
    `orchestrator web` over the same cut database answers the same way. (Before: the scrape failed.)"""
    from urllib.error import HTTPError

    from tests.tcp_proxy import proxied

    proxy, through_proxy = proxied(pg_schema_url)
    database = Database(pg_schema_url)
    ensure_schema(database)
    web_db = Database(through_proxy)
    web_client = create_app(DatabaseSource(web_db), WebSettings()).test_client()
    try:
        with LoopbackHTTPServer() as server:
            ComponentRegistry(database).add(ComponentSpec(name="shop", url=server.url, interval="500ms",
                                                          timeout="400ms"))
            with running_daemon(through_proxy, http="127.0.0.1:0", web=WebSettings()) as daemon:
                poll(lambda: daemon.web is not None, 10)

                def scrape() -> dict:
                    try:
                        with urllib.request.urlopen(daemon.web.url + "metrics", timeout=30) as response:
                            return _families(response.read().decode())
                    except HTTPError as exc:
                        raise AssertionError(f"/metrics answered {exc.code}") from exc

                # the component is checked (and its results written) before the cut: writes will fail after it
                poll(lambda: (_value(scrape(), "orchestrator_checks", component="shop", outcome="ok") or 0) > 0, 30)
                proxy.cut()
                cut = poll(lambda: (m := scrape()) and _value(m, "orchestrator_db_writes_healthy") == 0 and m, 60)
                assert _value(cut, "orchestrator_database_readable") == 0 and _value(cut, "orchestrator_ready") == 0
                assert "process_cpu_seconds" in cut and "orchestrator_build_info" in cut
                answer = web_client.get("/metrics")
                assert answer.status_code == 200
                web_families = _families(answer.get_data(as_text=True))
                assert _value(web_families, "orchestrator_database_readable") == 0
                proxy.restore()
                back = poll(lambda: (m := scrape()) and _value(m, "orchestrator_db_writes_healthy") == 1 and m, 60)
                assert _value(back, "orchestrator_ready") == 1 and _value(back, "orchestrator_database_readable") == 1
    finally:
        proxy.cut()
        web_db.dispose()
        database.dispose()


def test_fleet_check_totals_do_not_fall_when_a_component_is_removed(db: Database) -> None:
    """Without per-component series the checks counter is a sum over today's components: removing one
    must not make it fall (Prometheus would read a restart and count everything again)."""
    now = datetime.now(UTC)
    with db.write() as session:
        session.add_all([_component("a", now, checks_total=10, failures_total=2),
                         _component("b", now, checks_total=5, failures_total=1)])
    client = create_app(DatabaseSource(db, clock=FakeClock(now)), WebSettings(metrics_per_component=False)).test_client()
    before = _families(client.get("/metrics").get_data(as_text=True))
    ComponentRegistry(db).remove("a")
    with db.write() as session:
        session.scalars(select(Component)).one().checks_total = 7  # b checked twice more
    after = _families(client.get("/metrics").get_data(as_text=True))
    assert (_value(before, "orchestrator_checks", outcome="ok"), _value(before, "orchestrator_checks", outcome="failed")) \
        == (12, 3)
    assert _value(after, "orchestrator_checks", outcome="ok") == 12  # held: the drop of 8 is kept as an offset
    assert _value(after, "orchestrator_checks", outcome="failed") == 3


def test_push_monitors_last_success_is_served_and_passes_promtool(db: Database) -> None:
    """``orchestrator_push_last_success_timestamp_seconds{component}``: the newest success ping of each push
    monitor (a later fail does not move it; a monitor never pinged successfully has no series); the scrape
    passes ``promtool check metrics``, and per-component series off leaves the family out."""
    from orchestrator.db.models import PushPing

    now = datetime.now(UTC).replace(microsecond=0)
    spec = {"period_s": 3600.0}
    with db.write() as session:
        backup = _component("backup", now, check_kind="push", check_spec=spec)
        silent = _component("silent", now, check_kind="push", check_spec=spec)
        session.add_all([backup, silent, _component("api", now)])
        session.flush()
        session.add_all([
            PushPing(component_id=backup.id, received_at=now - timedelta(hours=3), kind="success", judged=True),
            PushPing(component_id=backup.id, received_at=now - timedelta(hours=1), kind="success", judged=True),
            PushPing(component_id=backup.id, received_at=now - timedelta(minutes=5), kind="fail", exit_status=1,
                     judged=True),
            PushPing(component_id=silent.id, received_at=now - timedelta(minutes=1), kind="start", judged=True),
        ])
    text = create_app(DatabaseSource(db, clock=FakeClock(now)), WebSettings()).test_client().get(
        "/metrics").get_data(as_text=True)
    families = _families(text)
    name = "orchestrator_push_last_success_timestamp_seconds"
    assert families[name].type == "gauge"
    assert [(s.labels, s.value) for s in families[name].samples] == [
        ({"component": "backup"}, (now - timedelta(hours=1)).timestamp())]
    checked = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), \
        checked.stdout + checked.stderr
    lean = create_app(DatabaseSource(db, clock=FakeClock(now)), WebSettings(metrics_per_component=False)).test_client()
    assert name not in lean.get("/metrics").get_data(as_text=True)
