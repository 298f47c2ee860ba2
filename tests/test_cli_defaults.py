"""Regression tests for two `component` defects: changes without --plan when other components have
plans, and a default timeout that did not follow the interval."""

from __future__ import annotations

import json

import pytest

URL = "http://127.0.0.1:8080/health"
PLANS = {"version": 1, "plans": {"web": {"steps": [{"strategy": "restart", "params": {"command": ["true"]}}]}}}


def _show(run_cli, name: str) -> dict:
    result = run_cli("component", "show", name, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def plans_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./recovery_strategies.json found by default
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(PLANS))
    return str(path)


def test_update_and_add_without_plan_file_when_others_have_plans(run_cli, plans_file) -> None:
    assert run_cli("component", "add", "api", "--url", URL, "--plan", "web", plans=plans_file).exit_code == 0
    # README: `orchestrator component update api --timeout 1s` (no plan file at hand)
    updated = run_cli("component", "update", "api", "--timeout", "1s")
    assert updated.exit_code == 0, updated.output
    assert _show(run_cli, "api")["timeout_s"] == 1.0
    added = run_cli("component", "add", "db", "--url", URL)
    assert added.exit_code == 0, added.output
    assert _show(run_cli, "api")["plan"] == "web"


def test_apply_of_unrelated_change_needs_no_plan_file(run_cli, plans_file, tmp_path) -> None:
    assert run_cli("component", "add", "api", "--url", URL, "--plan", "web", plans=plans_file).exit_code == 0
    path = tmp_path / "c.yaml"
    path.write_text(f"components:\n  - name: db\n    url: {URL}\n")
    result = run_cli("apply", "-f", str(path))
    assert result.exit_code == 0, result.output


def test_a_new_or_changed_plan_is_still_checked(run_cli, plans_file) -> None:
    assert run_cli("component", "add", "api", "--url", URL, "--plan", "web", plans=plans_file).exit_code == 0
    bad = run_cli("component", "update", "api", "--plan", "nope", plans=plans_file)
    assert bad.exit_code == 2 and "--plan" in bad.stderr and "nope" in bad.stderr
    missing = run_cli("component", "add", "db", "--url", URL, "--plan", "web")
    assert missing.exit_code == 2 and "no plan file found" in missing.stderr


@pytest.mark.parametrize(("interval", "timeout_s"), [("2s", 1.0), ("1s", 0.5), ("500ms", 0.25), ("4s", 2.0),
                                                     ("10s", 2.0)])
def test_default_timeout_follows_the_interval(run_cli, interval: str, timeout_s: float) -> None:
    result = run_cli("component", "add", "x", "--url", URL, "--interval", interval)
    assert result.exit_code == 0, result.output
    assert _show(run_cli, "x")["timeout_s"] == timeout_s


def test_given_timeout_is_kept_and_still_checked(run_cli) -> None:
    assert run_cli("component", "add", "x", "--url", URL, "--interval", "2s", "--timeout", "1500ms").exit_code == 0
    assert _show(run_cli, "x")["timeout_s"] == 1.5
    bad = run_cli("component", "add", "y", "--url", URL, "--interval", "2s", "--timeout", "3s")
    assert bad.exit_code == 2 and "--timeout" in bad.stderr


def test_update_of_interval_moves_a_default_timeout_only(run_cli) -> None:
    assert run_cli("component", "add", "x", "--url", URL).exit_code == 0
    assert run_cli("component", "update", "x", "--interval", "1s").exit_code == 0
    assert _show(run_cli, "x")["timeout_s"] == 0.5
    assert run_cli("component", "add", "y", "--url", URL, "--timeout", "1500ms").exit_code == 0
    refused = run_cli("component", "update", "y", "--interval", "1s")
    assert refused.exit_code == 2 and "--timeout" in refused.stderr
    assert _show(run_cli, "y")["interval_s"] == 10.0


def test_apply_file_without_timeout_follows_interval(run_cli, tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"components:\n  - name: x\n    url: {URL}\n    interval: 2s\n")
    result = run_cli("apply", "-f", str(path))
    assert result.exit_code == 0, result.output
    assert _show(run_cli, "x")["timeout_s"] == 1.0
    again = run_cli("apply", "-f", str(path))
    assert "0 created, 0 updated" in again.stdout


def test_defaults_have_one_home() -> None:
    from orchestrator.components import definition
    from orchestrator.db.models import Component
    from orchestrator.health.tracker import TrackerConfig

    config = TrackerConfig(interval_s=definition.DEFAULT_INTERVAL_S)
    assert config.failure_threshold == definition.DEFAULT_FAILURE_THRESHOLD
    assert config.success_threshold == definition.DEFAULT_SUCCESS_THRESHOLD
    assert config.retry_interval_s == definition.default_retry_interval_s(definition.DEFAULT_INTERVAL_S)
    columns = Component.__table__.c
    assert columns.interval_s.default.arg == definition.DEFAULT_INTERVAL_S
    assert columns.failure_threshold.default.arg == definition.DEFAULT_FAILURE_THRESHOLD
    assert columns.success_threshold.default.arg == definition.DEFAULT_SUCCESS_THRESHOLD
