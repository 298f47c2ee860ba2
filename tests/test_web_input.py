"""Malformed API input is refused with 400 naming the field and changes nothing; 405 says what is allowed.

Each row is a request that once acted wrongly or failed with 500 (the attacker's, the script author's
and the new operator's tries from issue 15); the document generated from the same models says so too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.db.engine import Database
from orchestrator.web.app import create_app
from orchestrator.web.openapi import openapi_document
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.conftest import snapshot
from tests.test_reports import _component, seed

TOKEN = "correct-horse-battery-staple"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
HUGE_ID = "18446744073709551617"

BAD = [
    # (id, method, url, json body, field)
    ("dry_run null acts", "POST", "/api/v1/components/svc/recover", {"dry_run": None}, "dry_run"),
    ("dry_run 'y' acts", "POST", "/api/v1/components/svc/recover", {"dry_run": "y"}, "dry_run"),
    ("dry_run 0 acts", "POST", "/api/v1/components/svc/recover", {"dry_run": 0}, "dry_run"),
    ("plan a list", "POST", "/api/v1/components/svc/recover", {"plan": [1]}, "plan"),
    ("plan an object", "POST", "/api/v1/components/svc/recover", {"plan": {"a": 1}}, "plan"),
    ("unknown key", "POST", "/api/v1/components/svc/recover", {"dryrun": True}, "dryrun"),
    ("pause overflow", "POST", "/api/v1/components/svc/pause", {"for": 4.2e16}, "for"),
    ("maintenance overflow", "POST", "/api/v1/components/svc/maintenance", {"for": 4.2e16}, "for"),
    ("pause for true", "POST", "/api/v1/components/svc/pause", {"for": True}, "for"),
    ("pause for empty", "POST", "/api/v1/components/svc/pause", {"for": ""}, "for"),
    ("pause for zero", "POST", "/api/v1/components/svc/pause", {"for": 0}, "for"),
    ("pause for 9999d", "POST", "/api/v1/components/svc/pause", {"for": "99999d"}, "for"),
    ("pause reason number", "POST", "/api/v1/components/svc/pause", {"reason": 5}, "reason"),
    ("maintenance end 'yes'", "POST", "/api/v1/components/svc/maintenance", {"end": "yes"}, "end"),
    ("note blank", "POST", "/api/v1/incidents/3/note", {"text": " \x1f "}, "text"),
    ("note NUL", "POST", "/api/v1/incidents/3/note", {"text": "a\x00b"}, "text"),
    ("ack with a body", "POST", "/api/v1/incidents/3/ack", {"force": True}, "force"),
    ("body not an object", "POST", "/api/v1/incidents/3/note", ["text"], "body"),
    ("ack huge id", "POST", f"/api/v1/incidents/{HUGE_ID}/ack", None, "id"),
    ("approve huge id", "POST", f"/api/v1/incidents/{HUGE_ID}/approve", None, "id"),
    ("show huge id", "GET", f"/api/v1/incidents/{HUGE_ID}", None, "id"),
    ("show id zero", "GET", "/api/v1/incidents/0", None, "id"),
    ("since out of range", "GET", "/api/v1/incidents?since=99999999d", None, "since"),
    ("limit not a number", "GET", "/api/v1/incidents?limit=ten", None, "limit"),
    ("limit twice", "GET", "/api/v1/incidents?limit=1&limit=2", None, "limit"),
    ("unknown parameter", "GET", "/api/v1/components?colour=red", None, "colour"),
    ("cursor with a huge id", "GET", "/api/v1/incidents?cursor=eyJrIjogMTg0NDY3NDQwNzM3MDk1NTE2MTd9", None,
     "cursor"),
    ("wait out of range", "GET", "/api/v1/degradation?wait=99999999d", None, "wait"),
]


@pytest.fixture
def app(db: Database, tmp_path):
    now = datetime.now(UTC)
    seed(db, now)
    plans = tmp_path / "plans.json"
    stub = tmp_path / "restart-it"
    stub.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'argv'}\n")
    stub.chmod(0o755)
    plans.write_text(json.dumps({"version": 1, "plans": {"web": {"steps": [
        {"strategy": "restart", "params": {"command": [str(stub), "{component.name}"]}}]}}}))
    with db.write() as session:
        session.add(_component("svc", now, plan="web"))
    source = DatabaseSource(db, plans_path=plans, clock=FakeClock(now))
    return create_app(source, WebSettings(token=TOKEN))


@pytest.mark.parametrize(("method", "url", "body", "field"), [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_malformed_input_is_refused_naming_the_field_and_changes_nothing(app, db: Database, tmp_path, method: str,
                                                                        url: str, body, field: str) -> None:
    before = snapshot(db)
    response = app.test_client().open(url, method=method, json=body, headers=BEARER)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["field"] == field and error["status"] == 400 and error["message"], error
    assert snapshot(db) == before
    assert not (tmp_path / "argv").exists()  # nothing was restarted


def test_a_405_says_which_methods_are_allowed_in_the_error_shape(app) -> None:
    client = app.test_client()
    for method, url in (("DELETE", "/api/v1/components/svc"), ("GET", "/api/v1/components/svc/pause"),
                        ("PUT", "/api/v1/incidents/3/ack"), ("PATCH", "/api/v1/status")):
        response = client.open(url, method=method, headers=BEARER)
        assert response.status_code == 405, (method, url)
        assert response.headers.get("Allow"), (method, url)
        assert response.get_json()["error"]["status"] == 405


def test_form_posts_from_the_page_read_true_and_false_and_nothing_else(app, db: Database, tmp_path) -> None:
    client = app.test_client()
    csrf = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/login", data={"token": TOKEN, "csrf_token": csrf}).status_code == 303
    before = snapshot(db)
    odd = client.post("/api/v1/components/svc/recover", data={"csrf_token": csrf, "dry_run": "y", "next": "/"})
    assert odd.status_code == 400 and snapshot(db) == before
    dry = client.post("/api/v1/components/svc/recover", data={"csrf_token": csrf, "dry_run": "true", "next": "/"})
    assert dry.status_code == 200 and "restart-it" in dry.get_data(as_text=True) and snapshot(db) == before
    ended = client.post("/api/v1/components/svc/maintenance",
                        data={"csrf_token": csrf, "for": "", "end": "true", "next": "/components/svc"})
    assert ended.status_code in (303, 409)


def test_the_document_is_generated_from_the_models_the_server_validates_with() -> None:
    document = openapi_document()
    pause = document["components"]["schemas"]["PauseBody"]
    assert pause["additionalProperties"] is False
    recover = document["components"]["schemas"]["RecoverBody"]["properties"]["dry_run"]
    assert recover["type"] == "boolean"
    incident_id = document["paths"]["/incidents/{id}"]["get"]["parameters"][0]["schema"]
    assert incident_id["maximum"] == 2**63 - 1 and incident_id["minimum"] == 1
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            assert "400" in op["responses"] and "405" in op["responses"], (method, path)
