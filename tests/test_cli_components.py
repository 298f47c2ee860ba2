"""`component ...` through Click's runner on both backends: happy paths, audit rows, bad input."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from tests.conftest import snapshot

URL = "http://127.0.0.1:8080/health"


def _list(run_cli) -> list[dict]:
    result = run_cli("component", "list", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_add_then_list_json(run_cli) -> None:
    result = run_cli("component", "add", "api", "--url", URL, "--interval", "5s")
    assert result.exit_code == 0, result.output
    [comp] = _list(run_cli)
    assert comp["name"] == "api"
    assert comp["url"] == URL
    assert comp["interval_s"] == 5.0
    assert comp["timeout_s"] == 2.0
    assert comp["failure_threshold"] == 3
    assert comp["state"] == "unknown"
    assert comp["depends_on"] == []


def test_show_update_pause_resume_remove(run_cli, db_url) -> None:
    assert run_cli("component", "add", "db", "--url", "http://127.0.0.1:5432/").exit_code == 0
    assert run_cli("component", "add", "api", "--url", URL, "--depends-on", "db", "--label", "team=core",
                   "--var", "unit=api.service", "--criticality", "high").exit_code == 0
    shown = json.loads(run_cli("component", "show", "api", "--json").stdout)
    assert shown["depends_on"] == ["db"] and shown["labels"] == {"team": "core"}
    assert shown["vars"] == {"unit": "api.service"} and shown["criticality"] == "high"

    assert run_cli("component", "update", "api", "--interval", "30s", "--label", "tier=web").exit_code == 0
    shown = json.loads(run_cli("component", "show", "api", "--json").stdout)
    assert shown["interval_s"] == 30.0 and shown["labels"] == {"team": "core", "tier": "web"}

    assert run_cli("component", "pause", "api", "--for", "30m", "--reason", "deploy").exit_code == 0
    shown = json.loads(run_cli("component", "show", "api", "--json").stdout)
    assert shown["state"] == "paused" and shown["paused_reason"] == "deploy"
    assert run_cli("component", "resume", "api").exit_code == 0
    assert json.loads(run_cli("component", "show", "api", "--json").stdout)["state"] == "unknown"

    refused = run_cli("component", "remove", "db")
    assert refused.exit_code == 2 and "api" in refused.stderr
    assert run_cli("component", "remove", "api").exit_code == 0
    assert run_cli("component", "remove", "db").exit_code == 0
    assert _list(run_cli) == []

    database = Database(db_url)
    with database.engine.connect() as conn:
        actions = [r[0] for r in conn.execute(sa.text("SELECT action FROM audit_log ORDER BY id"))]
        host, user, cmd = conn.execute(sa.text("SELECT host, os_user, command FROM audit_log LIMIT 1")).one()
    database.dispose()
    assert actions == ["create", "create", "update", "pause", "resume", "remove", "remove"]
    assert host and user and cmd.startswith("orchestrator")


def test_label_values_round_trip_unchanged(run_cli) -> None:
    value = 'it\'s "quoted" <script>alert(1)</script> [bold]x[/bold]'
    assert run_cli("component", "add", "api", "--url", URL, "--label", f"note={value}").exit_code == 0
    assert _list(run_cli)[0]["labels"]["note"] == value
    table = run_cli("component", "list")
    assert "<script>alert(1)</script>" in table.stdout and "[bold]x[/bold]" in table.stdout


BAD_ADDS = [
    pytest.param(["x;rm -rf /", "--url", URL], "NAME", id="shell-metachar-name"),
    pytest.param(["Api", "--url", URL], "NAME", id="uppercase-name"),
    pytest.param(["-api", "--url", URL], "", id="leading-dash-name"),
    pytest.param(["a" * 64, "--url", URL], "NAME", id="name-too-long"),
    pytest.param(["api", "--url", "ftp://host/x"], "--url", id="non-http-url"),
    pytest.param(["api", "--url", "http://"], "--url", id="url-without-host"),
    pytest.param(["api", "--url", "not a url"], "--url", id="garbage-url"),
    pytest.param(["api", "--url", URL, "--interval", "0s"], "--interval", id="zero-interval"),
    pytest.param(["api", "--url", URL, "--interval", "-5s"], "--interval", id="negative-interval"),
    pytest.param(["api", "--url", URL, "--interval", "10 parsecs"], "--interval", id="bad-duration"),
    pytest.param(["api", "--url", URL, "--interval", "2s", "--timeout", "2s"], "--timeout", id="timeout-eq-interval"),
    pytest.param(["api", "--url", URL, "--failure-threshold", "0"], "--failure-threshold", id="threshold-zero"),
    pytest.param(["api", "--url", URL, "--success-threshold", "-1"], "--success-threshold", id="success-negative"),
    pytest.param(["api", "--url", URL, "--plan", "nope"], "--plan", id="unknown-plan"),
    pytest.param(["api", "--url", URL, "--depends-on", "ghost"], "--depends-on", id="unknown-dependency"),
    pytest.param(["api", "--url", URL, "--depends-on", "api"], "--depends-on", id="self-dependency"),
    pytest.param(["existing", "--url", URL], "NAME", id="duplicate-name"),
    pytest.param(["api", "--url", URL, "--label", "novalue"], "--label", id="label-not-kv"),
    pytest.param(["api", "--url", URL, "--label", "bad key=1"], "--label", id="label-bad-key"),
    pytest.param(["api", "--url", URL, "--expect-status", "700"], "--expect-status", id="bad-status"),
    pytest.param(["api", "--url", URL, "--criticality", "urgent"], "--criticality", id="bad-criticality"),
    pytest.param(["api", "--url", URL, "--interval", "10s", "--max-probe-interval", "5s"], "--max-probe-interval",
                 id="probe-cap-below-interval"),
    pytest.param(["api", "--url", URL, "--max-probe-interval", "0s"], "--max-probe-interval", id="probe-cap-zero"),
]


@pytest.mark.parametrize(("args", "field"), BAD_ADDS)
def test_bad_add_exits_2_with_one_line_and_changes_nothing(run_cli, db_url, args, field) -> None:
    assert run_cli("component", "add", "existing", "--url", URL).exit_code == 0
    database = Database(db_url)
    ensure_schema(database)
    before = snapshot(database)
    result = run_cli("component", "add", *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert field in lines[0]
    assert "Traceback" not in result.output
    assert snapshot(database) == before


def test_dependency_cycle_via_update_is_refused(run_cli, db_url) -> None:
    assert run_cli("component", "add", "a", "--url", URL).exit_code == 0
    assert run_cli("component", "add", "b", "--url", URL, "--depends-on", "a").exit_code == 0
    database = Database(db_url)
    before = snapshot(database)
    result = run_cli("component", "update", "a", "--depends-on", "b")
    assert result.exit_code == 2
    assert "cycle" in result.stderr and "--depends-on" in result.stderr
    assert snapshot(database) == before


@pytest.mark.parametrize("command", [["show", "ghost"], ["remove", "ghost"], ["pause", "ghost"],
                                     ["resume", "ghost"], ["update", "ghost", "--interval", "5s"]])
def test_unknown_component_exits_2(run_cli, command) -> None:
    result = run_cli("component", *command)
    assert result.exit_code == 2
    assert "ghost" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_plan_must_exist_in_plan_file(run_cli, tmp_path) -> None:
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"version": 1, "plans": {"web": {"steps": [
        {"strategy": "wait", "params": {}}]}}}))
    ok = run_cli("component", "add", "api", "--url", URL, "--plan", "web", plans=str(plans))
    assert ok.exit_code == 0, ok.output
    bad = run_cli("component", "add", "api2", "--url", URL, "--plan", "db", plans=str(plans))
    assert bad.exit_code == 2 and "web" in bad.stderr


def test_unreachable_database_exits_1_without_traceback(runner) -> None:
    from orchestrator.cli import cli

    result = runner.invoke(cli, ["--db", "postgresql+psycopg://u:pw@127.0.0.1:1/x", "component", "list"])
    assert result.exit_code == 1
    assert "cannot reach database" in result.stderr
    assert "pw@" not in result.stderr and "Traceback" not in result.output


def test_maintenance_window_and_failback(run_cli, db_url) -> None:
    assert run_cli("component", "add", "api", "--url", URL, "--backup-url", "http://127.0.0.1:8081/health").exit_code == 0
    assert run_cli("component", "maintenance", "api", "--for", "1h").exit_code == 0
    assert json.loads(run_cli("component", "show", "api", "--json").stdout)["state"] == "maintenance"
    assert run_cli("component", "maintenance", "api", "--end").exit_code == 0
    assert json.loads(run_cli("component", "show", "api", "--json").stdout)["state"] == "unknown"
    both = run_cli("component", "maintenance", "api")
    assert both.exit_code == 2 and "--for" in both.stderr

    refused = run_cli("component", "failback", "api")
    assert refused.exit_code == 2 and "primary" in refused.stderr
    database = Database(db_url)
    with database.write_conn() as conn:
        conn.execute(sa.text("UPDATE components SET active_target = 'backup'"))
    assert run_cli("component", "failback", "api").exit_code == 0
    with database.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT active_target FROM components")).scalar() == "primary"
        actions = [r[0] for r in conn.execute(sa.text("SELECT action FROM audit_log ORDER BY id"))]
    database.dispose()
    assert actions == ["create", "maintenance", "maintenance-end", "failback"]


def test_the_down_probe_cap_is_set_on_add_and_update_and_reaches_the_tracker(run_cli, db_url) -> None:
    """``--max-probe-interval`` on add and update; left out, the tracker uses min(30 s, 5 x interval)."""
    from orchestrator.health.tracker import TrackerConfig

    assert run_cli("component", "add", "api", "--url", URL, "--interval", "2s").exit_code == 0
    shown = json.loads(run_cli("component", "show", "api", "--json").output)
    assert shown["max_probe_interval_s"] is None
    assert TrackerConfig(interval_s=2).down_backoff_cap_s == 10
    assert run_cli("component", "add", "web", "--url", URL, "--max-probe-interval", "20s").exit_code == 0
    assert json.loads(run_cli("component", "show", "web", "--json").output)["max_probe_interval_s"] == 20
    assert run_cli("component", "update", "api", "--max-probe-interval", "4s").exit_code == 0
    assert json.loads(run_cli("component", "show", "api", "--json").output)["max_probe_interval_s"] == 4
    bad = run_cli("component", "update", "api", "--max-probe-interval", "1s")
    assert bad.exit_code == 2 and "--max-probe-interval" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
