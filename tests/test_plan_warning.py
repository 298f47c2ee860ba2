"""A start or reload that leaves components without a known plan says so: a WARNING naming them and a
line in `status` (automation must never stop silently)."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from tests.daemon_helpers import poll, running_daemon, scalar

STEPS = {"steps": [{"strategy": "restart", "params": {"command": ["true"]}}]}


def _plans(path, *names: str) -> str:
    path.write_text(json.dumps({"version": 1, "plans": {n: STEPS for n in names}}))
    return str(path)


def _status(db_url: str, *args: str):
    return CliRunner().invoke(cli, ["--db", db_url, "status", *args])


def test_unknown_plan_at_start_is_warned_and_shown_until_the_reload_brings_it(
        db: Database, db_url: str, tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    Registry(db, plan_names={"web"}).add(ComponentSpec(name="api", url="http://127.0.0.1:9/", plan="web"))
    Registry(db).add(ComponentSpec(name="plain", url="http://127.0.0.1:9/"))
    path = tmp_path / "plans.json"
    caplog.set_level(logging.WARNING, logger="orchestrator.daemon")
    with running_daemon(db_url, plans_path=_plans(path, "db")) as daemon:
        warned = poll(lambda: [r.getMessage() for r in caplog.records if "recovery disabled" in r.getMessage()])
        assert "api (plan 'web')" in warned[0] and "plain" not in warned[0]
        poll(lambda: "daemon:" in _status(db_url).stdout)
        text = _status(db_url)
        assert "warning: plan not in" in text.stdout and "api (plan 'web')" in text.stdout
        [instance] = json.loads(_status(db_url, "--json").stdout)["instances"]
        assert "api (plan 'web')" in instance["plan_warning"]

        _plans(path, "db", "web")
        daemon.request_reload()
        poll(lambda: daemon.plan_warning is None, 15)
        poll(lambda: scalar(db, "SELECT COUNT(*) FROM daemon_instances WHERE plan_warning IS NOT NULL") == 0, 15)
        assert "warning:" not in _status(db_url).stdout


def test_no_plan_file_while_components_have_plans_is_warned(db: Database, db_url: str) -> None:
    Registry(db, plan_names={"web"}).add(ComponentSpec(name="api", url="http://127.0.0.1:9/", plan="web"))
    with running_daemon(db_url, plans_path=None) as daemon:
        poll(lambda: daemon.plan_warning is not None and "daemon:" in _status(db_url).stdout)
        assert daemon.plan_warning.startswith("no plan file found")
        assert "no plan file found: 1 component(s) will not be recovered: api" in _status(db_url).stdout


def test_component_added_later_with_an_unknown_plan_is_warned_by_the_heartbeat(db: Database, db_url: str,
                                                                                tmp_path) -> None:
    with running_daemon(db_url, plans_path=_plans(tmp_path / "plans.json", "web")) as daemon:
        poll(lambda: "daemon:" in _status(db_url).stdout)
        assert daemon.plan_warning is None
        Registry(db, plan_names={"gone"}).add(ComponentSpec(name="late", url="http://127.0.0.1:9/", plan="gone"))
        poll(lambda: daemon.plan_warning is not None and "late (plan 'gone')" in daemon.plan_warning, 15)
