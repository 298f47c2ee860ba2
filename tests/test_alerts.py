"""Alerts as an incident source through the real API on both databases: Alertmanager's webhook and the
generic form open, join and end incidents; an alert for no known component is kept and notified; bad
bodies are refused naming the field and change nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.core.clock import FakeClock
from orchestrator.db.engine import Database
from orchestrator.db.models import Alert, Incident, IncidentEventRow
from orchestrator.incidents.notifier import Notifier
from orchestrator.incidents.routing import Notifications
from orchestrator.web.app import create_app
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.conftest import snapshot
from tests.servers import LoopbackHTTPServer, wait_for
from tests.test_notify_delivery import receiver  # noqa: F401 (the real webhook receiver, a fixture)
from tests.test_recovery_support import add_component, open_for

TOKEN = "alert-intake-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
RUNBOOK = "https://runbooks.example.com/api-down"


def _client(db: Database, plans_path: Path | None = None):
    return create_app(DatabaseSource(db, clock=FakeClock(AT), plans_path=plans_path),
                      WebSettings(token=TOKEN)).test_client()


def am_body(status: str, *, component: str = "api", fingerprint: str = "f00d", **labels: str) -> dict:
    """Alertmanager's webhook body (version 4), as it sends it."""
    alert = {"status": status, "labels": {"alertname": "ApiDown", "component": component, **labels},
             "annotations": {"summary": "api answers 503", "runbook_url": RUNBOOK},
             "startsAt": "2026-03-01T11:59:00Z",
             "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-01T12:05:00Z",
             "generatorURL": "http://prometheus:9090/graph?g0.expr=up", "fingerprint": fingerprint}
    return {"version": "4", "groupKey": "{}:{alertname=\"ApiDown\"}", "truncatedAlerts": 0, "status": status,
            "receiver": "orchestrator", "groupLabels": {"alertname": "ApiDown"}, "commonLabels": alert["labels"],
            "commonAnnotations": alert["annotations"], "externalURL": "http://alertmanager:9093", "alerts": [alert]}


def _incidents(db: Database) -> list[Incident]:
    with db.read() as session:
        return list(session.scalars(select(Incident).order_by(Incident.id)))


def _kinds(db: Database, incident_id: int) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(IncidentEventRow.kind).where(IncidentEventRow.incident_id == incident_id)
                                    .order_by(IncidentEventRow.id)))


def test_a_firing_alert_opens_an_incident_with_its_labels_and_the_resolved_alert_ends_it(db) -> None:
    with LoopbackHTTPServer("ok") as server:
        add_component(db, "api", server.url)
        client = _client(db)
        answer = client.post("/api/v1/alerts/alertmanager", json=am_body("firing"), headers=BEARER)
        assert answer.status_code == 202, answer.get_json()
        [item] = answer.get_json()["items"]
        assert (item["outcome"], item["component"], item["alert"]) == ("opened", "api", "ApiDown")
        [incident] = _incidents(db)
        assert (incident.source, incident.status, incident.component_name) == ("alert", "open", "api")
        assert incident.reason == "alert ApiDown firing: api answers 503"

        # Alertmanager repeats a firing alert: nothing opens twice
        again = client.post("/api/v1/alerts/alertmanager", json=am_body("firing"), headers=BEARER).get_json()
        assert again["items"][0]["outcome"] == "already_firing" and len(_incidents(db)) == 1

        shown = client.get(f"/api/v1/incidents/{incident.id}").get_json()
        assert shown["source"] == "alert"
        [alert] = shown["alerts"]
        assert alert["labels"]["component"] == "api" and alert["runbook_url"] == RUNBOOK
        assert alert["annotations"]["summary"] == "api answers 503" and alert["ends_at"] is None
        page = client.get(f"/incidents/{incident.id}").get_data(as_text=True)
        assert f'href="{RUNBOOK}"' in page and "opened by an alert" in page

        ended = client.post("/api/v1/alerts/alertmanager", json=am_body("resolved"), headers=BEARER).get_json()
        assert ended["items"][0]["outcome"] == "resolved"
        [incident] = _incidents(db)
        assert (incident.status, incident.resolution) == ("resolved", "self")
        assert incident.status_reason == "alert ApiDown resolved"


def test_an_alert_joins_the_open_incident_and_its_resolution_leaves_a_check_incident_open(db) -> None:
    with LoopbackHTTPServer("ok") as server:
        cid = add_component(db, "api", server.url)
        opened = open_for(db, cid, "api", "3 consecutive failures")
        client = _client(db)
        generic = {"alerts": [{"name": "ApiSlow", "labels": {"component": "api"}, "annotations": {"summary": "p99 3s"}}]}
        [item] = client.post("/api/v1/alerts", json=generic, headers=BEARER).get_json()["items"]
        assert (item["outcome"], item["incident"]) == ("joined", opened)
        generic["alerts"][0]["status"] = "resolved"
        [item] = client.post("/api/v1/alerts", json=generic, headers=BEARER).get_json()["items"]
        assert item["outcome"] == "recorded"
        [incident] = _incidents(db)
        assert incident.status == "open" and incident.source == "check"  # the check opened it, the check ends it
        assert _kinds(db, opened) == ["opened", "alert_firing", "alert_resolved"]


def test_an_alert_for_no_known_component_is_recorded_and_notified(db, receiver) -> None:  # noqa: F811
    url = receiver[0]["url"]
    client = _client(db)
    [item] = client.post("/api/v1/alerts/alertmanager", json=am_body("firing", component="ghost"),
                         headers=BEARER).get_json()["items"]
    assert (item["outcome"], item["component"]) == ("unmatched", "ghost")
    [incident] = _incidents(db)
    assert (incident.kind, incident.component_id, incident.status) == ("alert", None, "open")
    assert "component='ghost' is no registered component" in incident.reason
    assert "an alert for no registered component" in client.get(f"/incidents/{incident.id}").get_data(as_text=True)
    assert "an alert, no component" in client.get("/").get_data(as_text=True)
    with db.read() as session:
        [row] = session.scalars(select(Alert))
        assert (row.incident_id, row.component_id, row.labels["component"]) == (incident.id, None, "ghost")

    notifier = Notifier(db, Notifications.model_validate({"webhooks": [{"url": url}]}), clock=FakeClock(AT))
    assert notifier.flush(force=True) == 1
    assert wait_for(lambda: len(receiver) > 1, 5)
    body = json.loads(receiver[1]["body"])
    assert body["event"] == "opened" and "ApiDown" in body["title"] and "ghost" in body["title"]

    client.post("/api/v1/alerts/alertmanager", json=am_body("resolved", component="ghost"), headers=BEARER)
    [incident] = _incidents(db)
    assert (incident.status, incident.resolution) == ("resolved", "self")


def test_a_configured_selector_maps_alerts_without_the_component_label(db, tmp_path) -> None:
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"version": 1, "plans": {"p": {"steps": [{"strategy": "notify", "params": {
                                     "webhooks": [{"url": "http://127.0.0.1:9/hook"}]}}]}},
                                 "alerts": {"component_label": "service",
                                            "map": [{"match": {"job": "payments"}, "component": "api"}]}}))
    with LoopbackHTTPServer("ok") as server:
        add_component(db, "api", server.url)
        client = _client(db, plans)
        body = {"alerts": [{"name": "Errors", "labels": {"job": "payments"}}]}
        [item] = client.post("/api/v1/alerts", json=body, headers=BEARER).get_json()["items"]
        assert (item["outcome"], item["component"]) == ("opened", "api")


BAD = [
    pytest.param("/api/v1/alerts/alertmanager", {**am_body("firing"), "version": "3"}, "version", id="am-version"),
    pytest.param("/api/v1/alerts/alertmanager", {**am_body("firing"), "alerts": []}, "alerts", id="am-no-alerts"),
    pytest.param("/api/v1/alerts/alertmanager", {**am_body("firing"), "extra": 1}, "extra", id="am-unknown-key"),
    pytest.param("/api/v1/alerts/alertmanager", {**am_body("firing"), "alerts": [
        {**am_body("firing")["alerts"][0], "status": "pending"}]}, "alerts[0].status", id="am-alert-status"),
    pytest.param("/api/v1/alerts/alertmanager", {**am_body("firing"), "alerts": [
        {**am_body("firing")["alerts"][0], "endsAt": 0}]}, "alerts[0].endsAt", id="am-time-a-number"),
    pytest.param("/api/v1/alerts/alertmanager", {**am_body("firing"), "alerts": [
        {**am_body("firing")["alerts"][0], "startsAt": "yesterday"}]}, "alerts[0].startsAt",
                 id="am-bad-time"),
    pytest.param("/api/v1/alerts", {"alerts": [{"labels": {"component": 3}}]}, "alerts[0].labels.component",
                 id="generic-label-type"),
    pytest.param("/api/v1/alerts", {"alerts": [{"labels": {}, "starts_at": "2026-03-01T12:00:00"}]}, "starts_at",
                 id="generic-naive-time"),
    pytest.param("/api/v1/alerts", {"alerts": [{"labels": {"component": "a\x00b"}}]}, "alerts[0].labels.component",
                 id="generic-nul-byte"),
    pytest.param("/api/v1/alerts", {"alerts": [{"name": "x"}], "alert": []}, "alert", id="generic-unknown-key"),
    pytest.param("/api/v1/alerts", [1], "body", id="generic-not-an-object"),
]


@pytest.mark.parametrize(("path", "body", "field"), BAD)
def test_bad_alert_bodies_are_refused_naming_the_field_and_change_nothing(db, path, body, field) -> None:
    with LoopbackHTTPServer("ok") as server:
        add_component(db, "api", server.url)
        client = _client(db)
        before = snapshot(db)
        answer = client.post(path, json=body, headers=BEARER)
        assert answer.status_code == 400, answer.get_json()
        assert answer.get_json()["error"]["field"] == field
        assert snapshot(db) == before


def test_alerts_need_the_bearer_token(db) -> None:
    client = _client(db)
    before = snapshot(db)
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = client.post("/api/v1/alerts/alertmanager", json=am_body("firing"), headers=headers)
        assert answer.status_code in (401, 403)
    assert snapshot(db) == before


def test_incidents_show_prints_the_alerts_labels_annotations_and_runbook(db, run_cli) -> None:
    with LoopbackHTTPServer("ok") as server:
        add_component(db, "api", server.url)
        _client(db).post("/api/v1/alerts/alertmanager", json=am_body("firing", severity="page"), headers=BEARER)
    [incident] = _incidents(db)
    result = run_cli("incidents", "show", str(incident.id))
    assert result.exit_code == 0, result.output
    assert "alert ApiDown (alertmanager): firing" in result.output
    assert "labels: alertname=ApiDown component=api severity=page" in result.output
    assert f"runbook_url: {RUNBOOK}" in result.output and "source" in result.output
    shown = json.loads(run_cli("incidents", "show", str(incident.id), "--json").output)
    assert shown["source"] == "alert" and shown["alerts"][0]["runbook_url"] == RUNBOOK


def test_secrets_in_annotations_are_redacted_and_only_http_runbooks_become_links(db) -> None:
    with LoopbackHTTPServer("ok") as server:
        add_component(db, "api", server.url)
        body = {"alerts": [{"name": "Leak", "labels": {"component": "api"}, "annotations": {
            "summary": "retry with https://hooks.example.com/x?token=s3cr3tvalue123",
            "runbook_url": "javascript:alert(document.cookie)"}}]}
        client = _client(db)
        assert client.post("/api/v1/alerts", json=body, headers=BEARER).status_code == 202
        [incident] = _incidents(db)
        shown = client.get(f"/api/v1/incidents/{incident.id}").get_json()
        page = client.get(f"/incidents/{incident.id}").get_data(as_text=True)
    assert "s3cr3tvalue123" not in json.dumps(shown) and "s3cr3tvalue123" not in page
    assert "s3cr3tvalue123" not in snapshot_text(db)
    assert shown["alerts"][0]["runbook_url"] is None and 'href="javascript:' not in page


def snapshot_text(db: Database) -> str:
    """Every row of the alerts and incidents tables as text."""
    import sqlalchemy as sa

    with db.engine.connect() as conn:
        return repr([conn.execute(sa.text(f"SELECT * FROM {t}")).all() for t in ("alerts", "incidents",
                                                                                  "incident_events")])


def _three_alerts(db: Database):
    """api's alert firing, one for an unknown component, one only seen resolved; the API client."""
    with LoopbackHTTPServer("ok") as server:
        add_component(db, "api", server.url)
        client = _client(db)
        client.post("/api/v1/alerts/alertmanager", json=am_body("firing"), headers=BEARER)
        client.post("/api/v1/alerts/alertmanager", json=am_body("firing", component="ghost", fingerprint="g1"),
                    headers=BEARER)
        client.post("/api/v1/alerts", json={"alerts": [{"name": "Old", "status": "resolved", "labels": {}}]},
                    headers=BEARER)
    return client


def test_the_alert_list_shows_every_alert_newest_first_matched_or_not(db) -> None:
    client = _three_alerts(db)
    listed = client.get("/api/v1/alerts").get_json()
    assert [(a["name"], a["component"], a["status"]) for a in listed["items"]] == [
        ("Old", None, "resolved"), ("ApiDown", "ghost", "firing"), ("ApiDown", "api", "firing")]
    assert listed["items"][2]["incident"] is not None and listed["items"][0]["incident"] is None
    firing = client.get("/api/v1/alerts?status=firing&component=api").get_json()["items"]
    assert [a["component"] for a in firing] == ["api"]
    first = client.get("/api/v1/alerts?limit=2").get_json()
    rest = client.get(f"/api/v1/alerts?limit=2&cursor={first['next_cursor']}").get_json()
    assert [a["id"] for a in first["items"] + rest["items"]] == [a["id"] for a in listed["items"]]
    assert rest["next_cursor"] is None
    bad = client.get("/api/v1/alerts?status=pending")
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "status"


def test_alerts_list_on_the_cli_prints_what_the_api_lists(db, run_cli) -> None:
    client = _three_alerts(db)
    api_items = json.loads(json.dumps(client.get("/api/v1/alerts").get_json()["items"]))
    shown = run_cli("alerts", "list", "--json")
    assert shown.exit_code == 0, shown.output
    cli_items = json.loads(shown.output)
    assert [(a["name"], a["component"], a["status"]) for a in cli_items] == [
        ("Old", None, "resolved"), ("ApiDown", "ghost", "firing"), ("ApiDown", "api", "firing")]
    assert [a["id"] for a in cli_items] == [a["id"] for a in api_items]
    assert cli_items[2]["runbook_url"] == RUNBOOK and cli_items[2]["incident"] is not None
    firing = json.loads(run_cli("alerts", "list", "--status", "firing", "--component", "api", "--json").output)
    assert [(a["name"], a["component"]) for a in firing] == [("ApiDown", "api")]
    table = run_cli("alerts", "list", "--status", "resolved")
    assert table.exit_code == 0 and "Old" in table.output and "ApiDown" not in table.output
    assert RUNBOOK in run_cli("alerts", "list", "--component", "api").output


@pytest.mark.parametrize(("args", "flag"), [
    (["--status", "pending"], "--status"), (["--component", "Bad Name!"], "--component"),
    (["--limit", "0"], "--limit"), (["--limit", "x"], "--limit"),
], ids=["status", "component", "limit-zero", "limit-text"])
def test_alerts_list_bad_input_exits_2_naming_the_flag(db, run_cli, args, flag) -> None:
    before = snapshot(db)
    result = run_cli("alerts", "list", *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in result.output
    assert snapshot(db) == before
