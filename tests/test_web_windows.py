"""/api/v1/maintenance and /api/v1/silences: list, create, delete; writes need the token; bad input is
400 naming the field and changes nothing; answers match their documented schemas; the page says it."""

from __future__ import annotations

import pytest

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from tests.conftest import snapshot
from tests.test_web_api import BEARER, _app, _response_schema, _validator

RECURRING = {"selector": "team=core", "cron": "0 2 * * SUN", "duration": "2h", "tz": "Europe/Berlin",
             "reason": "kernel updates"}


def test_create_list_delete_with_documented_shapes(db: Database) -> None:
    client = _app(db).test_client()
    made = client.post("/api/v1/maintenance", json=RECURRING, headers=BEARER)
    assert made.status_code == 201, made.get_json()
    _validator(_response_schema("/maintenance", "post", "201")).validate(made.get_json())
    window = made.get_json()
    assert window["recurring"] and window["created_by"] == "api" and window["next_start"] is not None
    silence = client.post("/api/v1/silences", json={"selector": "team=core", "for": "4h"}, headers=BEARER)
    assert silence.status_code == 201 and silence.get_json()["active"]
    listed = client.get("/api/v1/maintenance").get_json()
    _validator(_response_schema("/maintenance", "get", "200")).validate(listed)
    assert [w["id"] for w in listed["items"]] == [window["id"]]
    assert [w["kind"] for w in client.get("/api/v1/silences").get_json()["items"]] == ["silence"]
    gone = client.delete(f"/api/v1/maintenance/{window['id']}", headers=BEARER)
    assert gone.status_code == 200 and gone.get_json()["id"] == window["id"]
    assert client.get("/api/v1/maintenance").get_json()["items"] == []
    assert client.delete(f"/api/v1/silences/{window['id']}", headers=BEARER).status_code == 404


@pytest.mark.parametrize("path, body, field", [
    ("/api/v1/maintenance", {**RECURRING, "selector": "team"}, "selector"),
    ("/api/v1/maintenance", {**RECURRING, "cron": "0 2 * * SUNDAYS"}, "cron"),
    ("/api/v1/maintenance", {**RECURRING, "cron": "0 2 * *"}, "cron"),
    ("/api/v1/maintenance", {**RECURRING, "duration": "soon"}, "duration"),
    ("/api/v1/maintenance", {**RECURRING, "tz": "Mars/Base"}, "tz"),
    ("/api/v1/maintenance", {**RECURRING, "cron": "0 0 31 2 *"}, "cron"),  # never comes
    ("/api/v1/maintenance", {"selector": "team=core", "cron": "0 2 * * SUN"}, "duration"),
    ("/api/v1/maintenance", {"selector": "team=core", "duration": "2h"}, "cron"),
    ("/api/v1/maintenance", {**RECURRING, "for": "1h"}, "for"),
    ("/api/v1/maintenance", {"selector": "team=core", "for": "1h", "tz": "UTC"}, "tz"),
    ("/api/v1/maintenance", {"selector": "team=core"}, "for"),
    ("/api/v1/maintenance", {"selector": "team=core", "for": "1h", "start_in": "-1h"}, "start_in"),
    ("/api/v1/maintenance", {**RECURRING, "extra": 1}, "extra"),
    ("/api/v1/silences", {"selector": "team=core"}, "for"),
    ("/api/v1/silences", {"selector": "team=core", "for": "4h", "cron": "0 2 * * *"}, "cron"),
    ("/api/v1/silences", {"selector": "team=core", "for": "0s"}, "for"),
    ("/api/v1/silences", {"selector": "team=core", "for": "4h", "reason": "a\nb"}, "reason"),
])
def test_bad_input_is_400_naming_the_field_and_changes_nothing(db: Database, path, body, field) -> None:
    client = _app(db).test_client()
    before = snapshot(db)
    answer = client.post(path, json=body, headers=BEARER)
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["field"] == field
    assert snapshot(db) == before


def test_writes_need_the_token(db: Database) -> None:
    client = _app(db).test_client()
    before = snapshot(db)
    assert client.post("/api/v1/maintenance", json=RECURRING).status_code == 401
    assert client.post("/api/v1/silences", json={"selector": "team=core", "for": "1h"}).status_code == 401
    assert client.delete("/api/v1/maintenance/1").status_code == 401
    assert snapshot(db) == before


def test_the_component_page_says_it_is_in_maintenance(db: Database) -> None:
    client = _app(db).test_client()
    Registry(db).add(ComponentSpec(name="core-api", url="http://127.0.0.1:9/", labels={"team": "core"}))
    made = client.post("/api/v1/maintenance", json={"selector": "team=core", "for": "2h", "reason": "disk swap"},
                       headers=BEARER).get_json()
    later = client.post("/api/v1/silences", json={"selector": "team=core", "for": "1h", "start_in": "3h"},
                        headers=BEARER).get_json()
    assert not later["active"] and later["next_start"] == later["starts_at"]
    page = client.get("/components/core-api").get_data(as_text=True)
    until = made["ends_at"][:16].replace("T", " ")
    assert f"in maintenance\n  until {until} UTC: disk swap" in page
    assert "in maintenance" not in client.get(f"/components/{_other(client)}").get_data(as_text=True)


def _other(client) -> str:
    return next(c["name"] for c in client.get("/api/v1/components").get_json()["items"] if c["name"] != "core-api")
