"""The JSON API against its own OpenAPI document, writes behind token/CSRF, /metrics, health, badges.

The app runs over a real migrated database on both backends (``orchestrator web`` mode); one test runs
the real daemon with ``--http`` on a loopback port for the series only a daemon has.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from referencing import Registry, Resource
from sqlalchemy import select

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry as ComponentRegistry
from orchestrator.core.clock import FakeClock
from orchestrator.daemon import Daemon
from orchestrator.db.engine import Database
from orchestrator.db.models import AuditEntry, JournalEntry
from orchestrator.web.app import create_app
from orchestrator.web.auth import CSRF_COOKIE
from orchestrator.web.exposition import exposition
from orchestrator.web.journal_figures import JournalFiguresCache
from orchestrator.web.metrics import registry_for
from orchestrator.web.openapi import openapi_document
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.conftest import snapshot
from tests.daemon_helpers import poll, running_daemon
from tests.servers import LoopbackHTTPServer
from tests.test_reports import HOSTILE, _component, seed

TOKEN = "correct-horse-battery-staple"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _app(db: Database, token: str | None = TOKEN, clock=None, seeded: bool = False, **settings):
    now = datetime.now(UTC)
    if not seeded:
        seed(db, now)
    source = DatabaseSource(db, clock=clock or FakeClock(now))
    return create_app(source, WebSettings(token=token, **settings))


@pytest.fixture
def client(db: Database):
    return _app(db).test_client()


def _validator(schema_name: str) -> Draft202012Validator:
    document = openapi_document()
    registry = Registry().with_resource("urn:api", Resource.opaque(document))
    schema = {"$ref": f"urn:api#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _response_schema(path: str, method: str, status: str) -> str:
    op = openapi_document()["paths"][path][method]
    return op["responses"][status]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]


def test_the_openapi_document_is_valid_openapi_3_1(client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    validate(document)


READS = [
    ("/components", "/api/v1/components"),
    ("/components", "/api/v1/components?state=down&limit=1"),
    ("/components/{name}", "/api/v1/components/web"),
    ("/components/{name}/transitions", "/api/v1/components/web/transitions?limit=3"),
    ("/incidents", "/api/v1/incidents?status=resolved"),
    ("/incidents/{id}", "/api/v1/incidents/1"),
    ("/status", "/api/v1/status"),
    ("/instances", "/api/v1/instances"),
]


@pytest.mark.parametrize(("template", "url"), READS, ids=[u for _t, u in READS])
def test_every_read_matches_its_documented_schema(client, template: str, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 200, response.get_json()
    _validator(_response_schema(template, "get", "200")).validate(response.get_json())


def test_items_are_the_cli_json_shapes_and_pages_walk_every_component(db: Database, run_cli) -> None:
    client = _app(db).test_client()
    cli_items = json.loads(run_cli("component", "list", "--json").stdout)
    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/components?limit=2" + (f"&cursor={cursor}" if cursor else "")).get_json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == cli_items  # same serializer, same items, every one exactly once
    cli_incident = json.loads(run_cli("incidents", "show", "1", "--json").stdout)
    assert client.get("/api/v1/incidents/1").get_json() == cli_incident


def test_filters_by_state_and_label(client) -> None:
    names = lambda url: [c["name"] for c in client.get(url).get_json()["items"]]  # noqa: E731
    assert names("/api/v1/components?state=down") == ["api"]
    assert names("/api/v1/components?label=team=payments") == ["web"]
    assert names("/api/v1/components?state=up&state=down") == ["api", "web"]
    bad = client.get("/api/v1/components?state=sideways")
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "state"
    assert client.get("/api/v1/incidents?cursor=garbage").status_code == 400
    assert client.get("/api/v1/components/nope").status_code == 404


WRITES = [("/api/v1/components/web/pause", {"for": "30m", "reason": "deploy"}),
          ("/api/v1/components/web/resume", {}), ("/api/v1/components/web/maintenance", {"for": "1h"}),
          ("/api/v1/incidents/3/ack", {}), ("/api/v1/incidents/3/note", {"text": "looking"}),
          ("/api/v1/incidents/3/resolve", {"reason": "fixed by hand"})]


@pytest.mark.parametrize(("url", "body"), WRITES, ids=[u for u, _b in WRITES])
def test_writes_refuse_a_missing_or_wrong_token_and_change_nothing(db: Database, url: str, body: dict) -> None:
    client = _app(db, clock=FakeClock(datetime.now(UTC))).test_client()
    before = snapshot(db)
    assert client.post(url, json=body).status_code == 401
    wrong = client.post(url, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.get_json()["error"]["field"] == "Authorization"
    assert snapshot(db) == before


def test_writes_with_the_token_go_through_the_services_and_are_audited(client, db: Database) -> None:
    paused = client.post("/api/v1/components/web/pause", json={"for": "30m", "reason": "deploy"}, headers=BEARER)
    assert paused.status_code == 200 and paused.get_json()["state"] == "paused"
    _validator("Component").validate(paused.get_json())
    acked = client.post("/api/v1/incidents/3/ack", headers=BEARER)
    assert acked.status_code == 200 and acked.get_json()["acked_by"] == "api"
    note = client.post("/api/v1/incidents/3/note", json={"text": HOSTILE}, headers=BEARER)
    assert note.status_code == 201
    assert client.get("/api/v1/incidents/3").get_json()["notes"][0]["text"] == HOSTILE
    again = client.post("/api/v1/incidents/3/ack", headers=BEARER)
    assert again.status_code == 409
    bad = client.post("/api/v1/components/web/pause", json={"for": "soon"}, headers=BEARER)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "for"
    with db.read() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.os_user == "api").order_by(AuditEntry.id)).all()
    assert [(r.action, r.target, r.host) for r in rows] == [
        ("pause", "web", "127.0.0.1"), ("ack", "incident:3", "127.0.0.1"), ("note", "incident:3", "127.0.0.1")]
    assert rows[0].command == "POST /api/v1/components/web/pause"


def test_resolve_closes_an_incident_by_hand_and_bad_input_changes_nothing(client, db: Database) -> None:
    """Issue 14: nothing a person could do closed an escalated incident (``ack`` leaves it open)."""
    before = snapshot(db)
    for body, status, field in (({}, 400, "reason"), ({"reason": "  "}, 400, "reason")):
        refused = client.post("/api/v1/incidents/3/resolve", json=body, headers=BEARER)
        assert (refused.status_code, refused.get_json()["error"]["field"]) == (status, field)
    assert client.post("/api/v1/incidents/999/resolve", json={"reason": "x"}, headers=BEARER).status_code == 404
    assert snapshot(db) == before
    done = client.post("/api/v1/incidents/3/resolve", json={"reason": "fixed by hand"}, headers=BEARER)
    assert done.status_code == 200
    _validator("Incident").validate(done.get_json())
    assert (done.get_json()["status"], done.get_json()["resolution"]) == ("resolved", "manual")
    assert done.get_json()["status_reason"] == "resolved by api: fixed by hand"
    again = client.post("/api/v1/incidents/3/resolve", json={"reason": "again"}, headers=BEARER)
    assert again.status_code == 409
    with db.read() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action == "resolve")).all()
    assert [(r.target, r.after["reason"]) for r in rows] == [("incident:3", "fixed by hand")]


def test_no_token_configured_means_405_and_a_page_without_buttons(db: Database) -> None:
    client = _app(db, token=None).test_client()
    response = client.post("/api/v1/components/web/pause", headers=BEARER)
    assert response.status_code == 405 and "ORCHESTRATOR_API_TOKEN" in response.get_json()["error"]["message"]
    page = client.get("/components/web").get_data(as_text=True)
    assert "<button" not in page.replace('<button type="submit">filter</button>', "")


def test_cookie_login_needs_the_csrf_token_for_every_form(client) -> None:
    client.get("/login")
    csrf = client.application.extensions["orchestrator"].auth.csrf_token(client.get_cookie(CSRF_COOKIE).value)
    assert client.post("/login", data={"token": TOKEN}).status_code == 403  # no CSRF token on the login form
    login = client.post("/login", data={"token": TOKEN, "csrf_token": csrf, "next": "/components/web"})
    assert login.status_code == 303 and login.headers["Location"] == "/components/web"
    session = client.get_cookie("orchestrator_session")
    assert session.http_only and session.same_site == "Strict"
    refused = client.post("/api/v1/components/web/pause", data={"next": "/components/web"})
    assert refused.status_code == 403 and "CSRF token" in refused.get_data(as_text=True)  # a page: it was a form
    done = client.post("/api/v1/components/web/pause", data={"csrf_token": csrf, "next": "/components/web"})
    assert done.status_code == 303
    assert client.get("/api/v1/components/web").get_json()["state"] == "paused"


def test_pages_escape_everything_and_forbid_inline_script(client, db: Database) -> None:
    ComponentRegistry(db).add(ComponentSpec(name="evil", url="http://127.0.0.1:1/", labels={"note": HOSTILE}))
    for url in ("/", "/components/evil", "/incidents/3", "/report?since=30d"):
        response = client.get(url)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, url
        assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "<script>" not in html and "<style>" not in html and " style=" not in html, url


def test_metrics_parse_and_carry_the_series(db: Database) -> None:
    client = _app(db).test_client()
    response = client.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(response.get_data(as_text=True))}
    for name in ("orchestrator_checks", "orchestrator_component_state", "orchestrator_components",
                 "orchestrator_incidents_open", "orchestrator_recovery_actions", "orchestrator_recovery_verified_seconds",
                 "orchestrator_breaker_state", "orchestrator_dropped_results", "orchestrator_view_reliable"):
        assert name in families, name
    states = {(s.labels["component"], s.labels["state"]): s.value for s in families["orchestrator_component_state"].samples}
    assert states[("api", "down")] == 1.0 and states[("api", "up")] == 0.0
    assert {s.labels["status"]: s.value for s in families["orchestrator_incidents_open"].samples}["escalated"] == 1
    actions = {(s.labels["strategy"], s.labels["outcome"]): s.value
               for s in families["orchestrator_recovery_actions"].samples if s.name.endswith("_total")}
    assert actions == {("restart", "failed"): 1, ("restart", "succeeded"): 2, ("notify", "succeeded"): 1}
    assert "orchestrator_check_latency_seconds" not in families  # only a daemon has it
    lean = _app(db, seeded=True, metrics_per_component=False).test_client().get("/metrics").get_data(as_text=True)
    assert 'component="' not in lean and "orchestrator_components{" in lean


def test_health_badges_and_their_caching(client) -> None:
    for url in ("/healthz", "/readyz"):
        response = client.get(url)
        assert response.content_type == "application/health+json"
        assert response.get_json()["status"] in ("pass", "warn")
    badge = client.get("/badge/web/status.svg")
    assert badge.content_type.startswith("image/svg+xml") and "max-age=60" in badge.headers["Cache-Control"]
    assert ElementTree.fromstring(badge.data).find("{http://www.w3.org/2000/svg}title").text == "web: up"
    assert client.get("/badge/web/status.svg", headers={"If-None-Match": badge.headers["ETag"]}).status_code == 304
    uptime = ElementTree.fromstring(client.get("/badge/web/uptime/30d.svg").data)
    assert uptime.find("{http://www.w3.org/2000/svg}title").text == "uptime 30d: 99.78%"
    assert client.get("/badge/nope/status.svg").status_code == 404
    assert client.get("/badge/web/uptime/1y.svg").status_code == 404


@contextmanager
def daemon_serving_shop(tmp_path, web: WebSettings) -> Iterator[tuple[Daemon, Database]]:
    """The real daemon with ``--http`` on a loopback port, checking one component ("shop", every 500 ms)
    on a real loopback server; yields once its web server is up."""
    db_url = f"sqlite:///{tmp_path / 'live.db'}"
    with LoopbackHTTPServer() as server:
        database = Database(db_url)
        from orchestrator.db.migrate import ensure_schema

        ensure_schema(database)
        ComponentRegistry(database).add(ComponentSpec(name="shop", url=server.url, interval="500ms", timeout="400ms"))
        with running_daemon(db_url, http="127.0.0.1:0", web=web) as daemon:
            poll(lambda: daemon.web is not None, 20)
            yield daemon, database
        database.dispose()


def test_the_daemon_serves_live_metrics_and_health(tmp_path) -> None:
    with daemon_serving_shop(tmp_path, WebSettings(token=TOKEN)) as (daemon, _database):
        base = daemon.web.url

        def scrape() -> dict:
            with urllib.request.urlopen(base + "metrics", timeout=10) as response:
                return {f.name: f for f in text_string_to_metric_families(response.read().decode())}

        families = poll(lambda: (m := scrape()) and any(
            s.value > 0 for s in m["orchestrator_checks"].samples if s.labels.get("component") == "shop") and m, 20)
        for name in ("orchestrator_check_latency_seconds", "orchestrator_check_lateness_seconds",
                     "orchestrator_db_write_seconds", "orchestrator_scheduler_running"):
            assert name in families, name
        with urllib.request.urlopen(base + "healthz", timeout=10) as response:
            assert json.loads(response.read())["status"] == "pass"


@pytest.mark.parametrize("per_component", [True, False])
def test_metrics_fast_text_is_what_prometheus_client_writes(db: Database, per_component: bool) -> None:
    """The per-component families' own writer gives byte for byte prometheus_client's generic output."""
    now = datetime.now(UTC)
    seed(db, now)
    with db.write() as session:  # a name the registry refuses, written directly: it must still be escaped
        session.add(_component('odd"name\\x', now))
    registry = registry_for(DatabaseSource(db, clock=FakeClock(datetime.now(UTC))), per_component=per_component)
    fast = exposition(registry.collect())
    assert fast == generate_latest(registry)
    assert (b'component="odd\\"name\\\\x",state="unknown"} 1.0' in fast) is per_component


def test_journal_figures_are_recomputed_when_the_journal_changes(db: Database) -> None:
    seed(db, datetime.now(UTC))
    cache = JournalFiguresCache()
    with db.read() as session:
        first = cache.read(session)
        assert cache.read(session) is first  # unchanged journal: not computed again
    assert dict(((s, o), n) for s, o, n in first.actions)[("restart", "succeeded")] == 2
    with db.write() as session:  # a running attempt finishes: same row count, another status
        entry = session.scalars(select(JournalEntry).where(JournalEntry.strategy == "notify")).one()
        entry.status = "failed"
    with db.read() as session:
        second = cache.read(session)
    assert second is not first and ("notify", "failed", 1) in second.actions


class _BatchedSource(DatabaseSource):
    """The database as a daemon's web server sees it: ``batch`` stands for the recorder's batch count."""

    batch = 0

    def version(self):
        return self.batch


def test_the_daemon_reuses_the_overview_until_a_batch_a_write_or_a_second_passes(db: Database) -> None:
    now = datetime.now(UTC)
    seed(db, now)
    clock = FakeClock(now)
    source = _BatchedSource(db, clock=clock)
    client = create_app(source, WebSettings(token=TOKEN)).test_client()

    def row_of_cache() -> str:
        html = client.get("/?partial=1").get_data(as_text=True)
        return html.split('data-component="cache"', 1)[1].split("</tr>", 1)[0]

    assert "s-unknown" in row_of_cache()
    registry = ComponentRegistry(db)
    registry.set_hold("cache", paused_until=now + timedelta(hours=1), reason="x", pause=True)
    assert "s-unknown" in row_of_cache()  # same batch, same second: the answer is reused
    clock.advance(1.0)
    assert "s-paused" in row_of_cache()  # a second later it is built again
    registry.set_hold("cache", paused_until=None, reason=None, pause=False)
    clock.advance(0.5)
    assert "s-paused" in row_of_cache()
    source.batch += 1
    assert "s-unknown" in row_of_cache()  # a recorder batch: built again
    assert client.post("/api/v1/components/cache/pause", json={}, headers=BEARER).status_code == 200
    assert "s-paused" in row_of_cache()  # a write through the app: built again
    full = client.get("/").get_data(as_text=True)
    assert full.startswith("<!DOCTYPE html>") and 'data-component="cache"' in full and "log in" in full


def test_the_dry_run_button_always_sends_dry_run(db: Database) -> None:
    client = _app(db).test_client()
    with db.write() as session:
        session.add(_component("svc", datetime.now(UTC), plan="web"))
    html = client.get("/components/svc").get_data(as_text=True)
    form = html.split('action="/api/v1/components/svc/recover"')[2].split("</form>", 1)[0]
    assert '<input type="hidden" name="dry_run" value="true">' in form and ">dry run</button>" in form


def test_fleet_totals_without_per_component_series_match_the_per_component_ones(db: Database) -> None:
    now = datetime.now(UTC)
    seed(db, now)
    source = DatabaseSource(db, clock=FakeClock(now))

    def families(per_component: bool) -> dict:
        text = exposition(registry_for(source, per_component=per_component).collect()).decode()
        return {f.name: f for f in text_string_to_metric_families(text)}

    full, lean = families(True), families(False)
    for name in ("orchestrator_components", "orchestrator_breakers"):
        assert {s.labels["state"]: s.value for s in lean[name].samples} == \
            {s.labels["state"]: s.value for s in full[name].samples}, name
    by_outcome = {"ok": 0.0, "failed": 0.0}
    for sample in full["orchestrator_checks"].samples:
        by_outcome[sample.labels["outcome"]] += sample.value
    assert {s.labels["outcome"]: s.value for s in lean["orchestrator_checks"].samples} == by_outcome
    assert {s.labels["state"]: s.value for s in lean["orchestrator_components"].samples}["down"] == 1


def test_a_dry_run_from_the_api_renders_the_steps_and_changes_nothing(db: Database, tmp_path) -> None:
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"version": 1, "plans": {"web": {"steps": [
        {"strategy": "restart", "params": {"command": ["/bin/restart-it", "{component.name}"]}}]}}}))
    with db.write() as session:
        session.add(_component("svc", datetime.now(UTC), plan="web"))
    source = DatabaseSource(db, plans_path=plans, clock=FakeClock(datetime.now(UTC)))
    client = create_app(source, WebSettings(token=TOKEN)).test_client()
    before = snapshot(db)
    response = client.post("/api/v1/components/svc/recover", json={"dry_run": True}, headers=BEARER)
    assert response.status_code == 200
    body = response.get_json()
    _validator(_response_schema("/components/{name}/recover", "post", "200")).validate(body)
    assert body["dry_run"] is True and '["/bin/restart-it", "svc"]' in body["steps"][0]
    assert snapshot(db) == before  # no incident, no journal row, no audit row
