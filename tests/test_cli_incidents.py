"""`orchestrator incidents …` and `orchestrator recover`, through the real CLI (both backends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.core.states import IncidentStatus
from orchestrator.db.engine import Database
from orchestrator.db.models import AuditEntry, IncidentEventRow
from orchestrator.incidents import status
from tests.conftest import snapshot
from tests.servers import LoopbackHTTPServer
from tests.test_recovery_support import (
    FAST,
    add_component,
    incident,
    journal_rows,
    open_for,
    stubs_fixture,  # noqa: F401 - the `stubs` fixture
)


@pytest.fixture
def plans_file(tmp_path: Path) -> str:
    path = tmp_path / "plans.json"
    path.write_text(json.dumps({"version": 1, "defaults": FAST, "plans": {"p": {"steps": [
        {"strategy": "restart", "params": {"command": ["svcctl", "{component.name}", "{vars.unit}"]}, "attempts": 1}]}}}))
    return str(path)


@pytest.fixture
def server() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer("ok") as s:
        yield s


def test_recover_dry_run_prints_rendered_actions_and_runs_nothing(run_cli, db, stubs, plans_file, server) -> None:
    stubs.make("svcctl")
    add_component(db, "web", server.url, vars={"unit": "a b;c"})
    result = run_cli("recover", "web", "--dry-run", plans=plans_file)
    assert result.exit_code == 0, result.output
    assert 'would run ["svcctl", "web", "a b;c"]' in result.output and stubs.calls() == []


def test_recover_runs_the_plan_and_prints_each_attempt(run_cli, db, stubs, plans_file, server) -> None:
    stubs.make("svcctl")
    add_component(db, "web", server.url, vars={"unit": "web.service"})
    result = run_cli("recover", "web", plans=plans_file)
    assert result.exit_code == 0, result.output
    assert "step 0 (restart) attempt 1: succeeded" in result.output and "resolved" in result.output
    assert stubs.calls() == [["web", "web.service"]]


def test_recover_bad_input_exits_2_with_one_line(run_cli, db, plans_file, server) -> None:
    add_component(db, "web", server.url)
    for args in (["recover", "nope"], ["recover", "web", "--plan", "missing"]):
        result = run_cli(*args, plans=plans_file)
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output


def test_incidents_list_show_ack_approve(run_cli, db: Database, stubs, plans_file, server) -> None:
    stubs.make("svcctl")
    cid = add_component(db, "web", server.url, vars={"unit": "u"})
    assert run_cli("recover", "web", plans=plans_file).exit_code == 0
    open_for(db, add_component(db, "api", server.url), "api")
    listed = json.loads(run_cli("incidents", "list", "--json").output)
    assert [(i["component"], i["status"]) for i in listed] == [("api", "open"), ("web", "resolved")]
    only = json.loads(run_cli("incidents", "list", "--component", "web", "--status", "resolved", "--since", "1d",
                              "--json").output)
    assert len(only) == 1
    web_id = only[0]["id"]
    shown = json.loads(run_cli("incidents", "show", str(web_id), "--json").output)
    [attempt] = shown["journal"]
    assert attempt["status"] == "succeeded" and attempt["verification"]["passed"] and attempt["executed"]
    text = run_cli("incidents", "show", str(web_id)).output
    assert "step 0 attempt 1 restart: succeeded" in text
    assert run_cli("incidents", "ack", str(web_id)).exit_code == 0
    assert incident(db, web_id).acked_at is not None
    refused = run_cli("incidents", "approve", str(web_id))  # not awaiting approval
    assert refused.exit_code == 2
    with db.write() as session:
        from orchestrator.db.models import Incident

        session.get(Incident, listed[0]["id"]).status = "awaiting_approval"
    assert run_cli("incidents", "approve", str(listed[0]["id"])).exit_code == 0
    assert incident(db, listed[0]["id"]).approved_at is not None
    with db.read() as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.target.like("incident:%"))).all()
    assert sorted(actions) == ["ack", "approve"]
    assert cid and journal_rows(db, web_id)


def test_incidents_bad_input_exits_2(run_cli, db) -> None:
    for args in (["incidents", "show", "999"], ["incidents", "list", "--status", "weird"],
                 ["incidents", "list", "--since", "soon"], ["incidents", "ack", "0"]):
        result = run_cli(*args)
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, (args, result.output)


def test_incidents_resolve_closes_one_by_hand_as_manual_and_audits_it(run_cli, db: Database, server) -> None:
    """Issue 14: an escalated incident could not be closed by a person (``ack`` leaves it open)."""
    iid = open_for(db, add_component(db, "web", server.url), "web")
    with db.write() as session:
        status.transition(session, iid, "open", IncidentStatus.ESCALATED, now=incident(db, iid).opened_at,
                          reason="plan exhausted")
    result = run_cli("incidents", "resolve", str(iid), "--reason", "restarted the host by hand")
    assert result.exit_code == 0, result.output
    closed = incident(db, iid)
    assert (closed.status, closed.resolution) == ("resolved", "manual")
    assert closed.status_reason.endswith(": restarted the host by hand")
    with db.read() as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "resolve")).all()
        kinds = session.scalars(select(IncidentEventRow.resolution).where(IncidentEventRow.incident_id == iid,
                                                                          IncidentEventRow.kind == "resolved")).all()
    assert (entry.target, entry.before, entry.after["resolution"]) == (f"incident:{iid}", {"status": "escalated"},
                                                                      "manual")
    assert kinds == ["manual"]


def test_incidents_resolve_bad_input_exits_2_with_one_line_and_changes_nothing(run_cli, db: Database, server) -> None:
    iid = open_for(db, add_component(db, "web", server.url), "web")
    done = open_for(db, add_component(db, "api", server.url), "api")
    assert run_cli("incidents", "resolve", str(done), "--reason", "first").exit_code == 0
    before = snapshot(db)
    for args in (["999", "--reason", "x"], [str(iid)], [str(iid), "--reason", "   "], [str(done), "--reason", "x"],
                 ["zero", "--reason", "x"]):
        result = run_cli("incidents", "resolve", *args)
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, (args, result.output)
    assert snapshot(db) == before
