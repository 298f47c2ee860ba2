"""``/api/v1/degradation`` served from the database (``orchestrator web``): the document against the
OpenAPI schema, ETag, long-poll, bad input, the header, the page banner, /metrics, and the CLI."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.core.clock import FakeClock
from orchestrator.db.audit import Actor
from orchestrator.db.engine import Database
from orchestrator.degradation import store
from orchestrator.degradation.policy import DEFAULT_POLICY
from orchestrator.web.app import create_app
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.conftest import snapshot
from tests.test_web_api import _validator


def publish(db: Database, level: str, version: int, scope: str = "global", reasons: tuple[str, ...] = ()) -> dict:
    now = datetime.now(UTC)
    doc = store.document(scope, level, version, now, list(reasons), DEFAULT_POLICY.features_at(level),
                         DEFAULT_POLICY.ttl_s, None)
    with db.write() as session:
        store.write_level(session, doc, now=now)
        store.add_event(session, doc, "normal", None)
    return doc


@pytest.fixture
def client(db: Database):
    return create_app(DatabaseSource(db, clock=FakeClock(datetime.now(UTC))), WebSettings()).test_client()


def test_document_matches_the_schema_with_etag_and_header(db: Database, client) -> None:
    publish(db, "degraded", 4, reasons=("degraded: 2 of 10 components down (20% >= 10%)",))
    answer = client.get("/api/v1/degradation")
    assert answer.status_code == 200
    body = answer.get_json()
    _validator("Degradation").validate(body)
    assert (body["level"], body["version"], body["features"]["analytics"]) == ("degraded", 4, False)
    assert answer.headers["ETag"] == '"4"' and answer.headers["X-Degradation-Level"] == "degraded"
    again = client.get("/api/v1/degradation", headers={"If-None-Match": '"4"'})
    assert again.status_code == 304 and again.data == b""
    assert client.get("/api/v1/status").headers["X-Degradation-Level"] == "degraded"  # every API answer
    assert "X-Degradation-Level" not in client.get("/").headers  # not on pages
    assert "/degradation" in client.get("/api/v1/openapi.json").get_json()["paths"]


def test_long_poll_answers_on_change_and_304_on_timeout(db: Database, client) -> None:
    publish(db, "normal", 1)
    started = time.monotonic()
    unchanged = client.get("/api/v1/degradation?after=1&wait=300ms")
    assert unchanged.status_code == 304 and time.monotonic() - started >= 0.25
    assert client.get("/api/v1/degradation?after=0&wait=30s").get_json()["version"] == 1  # already moved: at once
    got = []
    waiter = threading.Thread(target=lambda: got.append(client.get("/api/v1/degradation?after=1&wait=20s")))
    waiter.start()
    publish(db, "emergency", 2)
    waiter.join(10)
    assert not waiter.is_alive() and got[0].status_code == 200 and got[0].get_json()["level"] == "emergency"


@pytest.mark.parametrize(("query", "status", "field"), [
    ("wait=soon&after=1", 400, "wait"),
    ("after=x&wait=1s", 400, "after"),
    ("scope=team", 400, "scope"),
    ("scope=team=checkout", 404, "scope"),
])
def test_bad_input_names_the_field(db: Database, client, query: str, status: int, field: str) -> None:
    publish(db, "normal", 1)
    answer = client.get(f"/api/v1/degradation?{query}")
    assert answer.status_code == status
    assert answer.get_json()["error"]["field"] == field


def test_nothing_published_yet_is_a_clear_404(client) -> None:
    answer = client.get("/api/v1/degradation")
    assert answer.status_code == 404 and "no daemon has published" in answer.get_json()["error"]["message"]


def test_page_banner_and_metrics(db: Database, client) -> None:
    publish(db, "minimal", 3, reasons=("minimal: 1 critical component down",))
    page = client.get("/").get_data(as_text=True)
    assert 'id="degradation"' in page and "MINIMAL" in page and "1 critical component down" in page
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))}
    [sample] = families["orchestrator_degradation_level"].samples
    assert sample.labels == {"scope": "global"} and sample.value == 2


def test_cli_status_history_set_clear(db: Database, db_url: str, run_cli) -> None:
    publish(db, "degraded", 2, reasons=("degraded: 1 of 10 components down (10% >= 10%)",))
    shown = json.loads(run_cli("degradation", "status", "--json").output)
    assert shown[0]["level"] == "degraded" and shown[0]["features"]["analytics"] is False
    assert "degraded: 1 of 10" in run_cli("degradation", "status").output
    history = json.loads(run_cli("degradation", "history", "--json").output)
    assert [(h["from"], h["to"]) for h in history] == [("normal", "degraded")]
    done = run_cli("degradation", "set", "emergency", "--for", "30m", "--reason", "db failover drill")
    assert done.exit_code == 0 and "emergency until" in done.output
    assert "override" in run_cli("degradation", "status").output
    assert run_cli("degradation", "clear").exit_code == 0
    assert "no override" in run_cli("degradation", "clear").output


@pytest.mark.parametrize("args", [
    ["set", "loud", "--for", "30m", "--reason", "x"],
    ["set", "minimal", "--for", "soon", "--reason", "x"],
    ["set", "minimal", "--for", "30d", "--reason", "x"],
    ["set", "minimal", "--for", "30m", "--reason", "  "],
    ["set", "minimal", "--for", "30m", "--reason", "x", "--scope", "team"],
    ["set", "minimal", "--for", "30m"],
    ["clear", "--scope", "team=checkout"],
    ["history", "--scope", "a=b=c"],
])
def test_bad_cli_input_exits_2_with_one_line_and_changes_nothing(db: Database, run_cli, args) -> None:
    store.set_override(db, "global", "degraded", 600, "keep", actor=Actor())
    before = snapshot(db)
    result = run_cli("degradation", *args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and "Traceback" not in result.output and "internal error" not in result.output
    assert lines[-1].startswith("error:") or "Error:" in lines[-1]
    assert snapshot(db) == before


def test_report_has_the_level_timeline(db: Database) -> None:
    from datetime import timedelta

    from orchestrator.reports.model import build_report
    from orchestrator.reports.render import render_html

    now = datetime.now(UTC)
    for minutes_ago, level, version in ((50, "minimal", 2), (20, "normal", 3)):
        at = now - timedelta(minutes=minutes_ago)
        doc = store.document("global", level, version, at, [f"{level}: reason"], {}, 10.0, None)
        with db.write() as session:
            store.add_event(session, doc, "normal" if level != "normal" else "minimal", None)
    report = build_report(db, 3600, clock=FakeClock(now))
    [timeline] = report.levels
    assert [s.state for s in timeline.segments] == ["normal", "minimal", "normal"]
    assert timeline.seconds_by_level["minimal"] == pytest.approx(1800, abs=1)
    html = render_html(report)
    assert 'data-level="minimal"' in html and "minimal: reason" in html
