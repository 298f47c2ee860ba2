"""Input that cannot act wrongly: each malformed value is refused where it enters (exit 2, one line naming
the field, nothing changed), never stored to fail later."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.components.definition import ComponentSpec
from orchestrator.core.errors import PlanError
from orchestrator.core.redaction import is_secret_name, redact, redact_view
from orchestrator.db.engine import Database
from orchestrator.incidents import operator
from orchestrator.plans import parse_plans
from tests.conftest import snapshot
from tests.test_recovery_support import add_component, open_for


def _one_line_exit_2(result, field: str) -> None:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and field in lines[0], result.output
    assert "Traceback" not in result.output


# --- intervals and timeouts -----------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "field"), [
    (["--interval", "0.0001"], "--interval"),
    (["--interval", "50ms"], "--interval"),
    (["--interval", "1s", "--timeout", "5ms"], "--timeout"),
])
def test_add_refuses_checks_faster_than_the_floors(run_cli, db: Database, flags, field) -> None:
    before = snapshot(db)
    result = run_cli("component", "add", "api", "--url", "http://127.0.0.1:9/", *flags)
    _one_line_exit_2(result, field)
    assert snapshot(db) == before


def test_the_floors_themselves_are_accepted(run_cli, db: Database) -> None:
    result = run_cli("component", "add", "api", "--url", "http://127.0.0.1:9/", "--interval", "100ms",
                     "--timeout", "10ms")
    assert result.exit_code == 0, result.output


def test_apply_file_and_shared_model_name_the_field(run_cli, db: Database, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("components:\n  - name: a\n    url: http://127.0.0.1:9/\n    interval: 0.0001\n")
    before = snapshot(db)
    _one_line_exit_2(run_cli("apply", "-f", str(path)), "components[0].interval")
    assert snapshot(db) == before
    for fields, name in (({"interval": 0.0001}, "interval"), ({"interval": 1, "timeout": 0.001}, "timeout")):
        with pytest.raises(ValueError, match=name):  # the API builds the same model
            ComponentSpec(name="a", url="http://127.0.0.1:9/", **fields)


# --- argv in plans ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("element", ["a\u0000b", "{vars.x", "{component.name", "x}y", "}", "{"])
def test_plan_argv_with_nul_or_unbalanced_brace_is_refused_with_its_json_path(element: str) -> None:
    data = {"version": 1, "plans": {"p": {"steps": [
        {"strategy": "restart", "params": {"command": ["echo", element]}}]}}}
    with pytest.raises(PlanError) as caught:
        parse_plans(data, "plans.json")
    assert caught.value.field == "plans.p.steps[0].params.command[1]", str(caught.value)


def test_plan_resolver_argv_and_templates_are_checked_the_same_way() -> None:
    bad = {"rollback": {"command": ["deploy", "{version}"], "resolver": ["x}y"]},
           "notify": {"urls": ["json://127.0.0.1:9/"], "message": "down {component.name"}}
    for strategy, params in bad.items():
        with pytest.raises(PlanError, match="unbalanced"):
            parse_plans({"version": 1, "plans": {"p": {"steps": [{"strategy": strategy, "params": params}]}}},
                        "plans.json")


def test_doubled_braces_and_placeholders_still_validate() -> None:
    plans = parse_plans({"version": 1, "plans": {"p": {"steps": [{"strategy": "restart", "params": {
        "command": ["echo", "{{literal}}", "{vars.unit}-{component.name}"]}}]}}}, "plans.json")
    assert "p" in plans.plans


# --- notification URLs ------------------------------------------------------------------------------------


def test_unknown_notification_url_is_refused_and_apprise_prints_nothing(tmp_path: Path) -> None:
    path = tmp_path / "plans.json"
    path.write_text(json.dumps({"version": 1, "notifications": {"urls": ["notaurl"]}, "plans": {}}))
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "plans", "validate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr  # one line
    assert proc.stderr.startswith("error: notifications.urls[0]: not a valid Apprise URL"), proc.stderr
    assert "apprise" not in proc.stderr.split("(see")[0].lower().replace("apprise url", "")


# --- every CLI error exits 2 ------------------------------------------------------------------------------


def test_incidents_list_for_an_unknown_component_exits_2(run_cli, db: Database) -> None:
    _one_line_exit_2(run_cli("incidents", "list", "--component", "nosuch"), "--component")


def test_incidents_list_for_a_removed_component_with_history_still_lists(run_cli, db: Database) -> None:
    open_for(db, add_component(db, "gone", "http://127.0.0.1:9/", plan=None), "gone")
    assert run_cli("component", "remove", "gone").exit_code == 0
    result = run_cli("incidents", "list", "--component", "gone", "--json")
    assert result.exit_code == 0 and [i["component"] for i in json.loads(result.output)] == ["gone"]
    empty = run_cli("component", "add", "quiet", "--url", "http://127.0.0.1:9/")
    assert empty.exit_code == 0
    assert json.loads(run_cli("incidents", "list", "--component", "quiet", "--json").output) == []


def test_report_to_an_unwritable_path_exits_2_before_reading(run_cli, db: Database, tmp_path: Path) -> None:
    _one_line_exit_2(run_cli("report", "-o", str(tmp_path / "no" / "dir" / "x.html")), "--output")
    _one_line_exit_2(run_cli("report", "-o", str(tmp_path)), "--output")


def test_a_token_file_that_does_not_exist_exits_2_without_http(run_cli, db: Database, tmp_path: Path) -> None:
    result = run_cli("run", "--api-token-file", str(tmp_path / "nope"), "--for", "1s")
    _one_line_exit_2(result, "--api-token-file")


# --- redaction by whole words, notes as text --------------------------------------------------------------


@pytest.mark.parametrize("name", ["author", "Author", "authority", "keyboard", "monkey_count", "tokenizer_mode",
                                  "passage", "sessionless"])
def test_names_that_only_contain_a_secret_word_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize("name", ["apiKey", "X-API-Key", "accesstoken", "client_secret", "db_pass", "x-auth",
                                  "Proxy-Authorization", "SESSION_ID", "private_key"])
def test_real_secret_names_stay_secret(name: str) -> None:
    assert is_secret_name(name)


def test_free_text_keys_follow_the_same_rule() -> None:
    assert redact("author=bob token=abc123") == "author=bob token=***"
    assert redact("http://h/x?author=me&api_key=k123") == "http://h/x?author=me&api_key=***"


def test_incidents_show_prints_notes_as_text_with_their_author(run_cli, db: Database) -> None:
    incident_id = open_for(db, add_component(db, "web", "http://127.0.0.1:9/", plan=None), "web")
    operator.note(db, incident_id, "rolled the cache by hand\nsee ticket 12")
    shown = run_cli("incidents", "show", str(incident_id))
    assert shown.exit_code == 0, shown.output
    assert "[{" not in shown.output and "'text'" not in shown.output, shown.output
    assert "rolled the cache by hand" in shown.output and "  see ticket 12" in shown.output
    [note] = json.loads(run_cli("incidents", "show", str(incident_id), "--json").output)["notes"]
    assert note["author"] != "***" and note["author"] in shown.output
    assert redact_view({"author": "alice"}) == {"author": "alice"}
