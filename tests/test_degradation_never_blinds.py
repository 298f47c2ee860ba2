"""Degradation never blinds or freezes the orchestrator (DESIGN.md invariant 6, never silent).

The real daemon over loopback services with the shipped degradation policy: a fleet-health level never
stops a check or a recovery step; a mass outage is held by the blast-radius guard (at >= its threshold)
with one mass-outage incident and EMERGENCY published; only an operator's EMERGENCY override freezes
automation, and it says so in the log, `status`, the page and the incident.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from orchestrator.cli import cli
from orchestrator.core.states import ComponentState
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, Incident
from tests.daemon_helpers import poll, recording_stub, running_daemon
from tests.servers import LoopbackHTTPServer

#: generous: a loaded machine may run these checks late
DEADLINE_S = 60.0


def _plans(tmp_path: Path, stub: Path) -> Path:
    """One restart step; no degradation section: the shipped policy and limits apply."""
    path = tmp_path / "plans.json"
    path.write_text(json.dumps({"version": 1, "plans": {"svc": {"steps": [
        {"strategy": "restart", "params": {"command": [str(stub), "{component.name}"]}, "attempts": 1,
         "verify": {"interval": "100ms", "deadline": "1s"}}]}}}))
    return path


def _restarted(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


@contextmanager
def _fleet(runner, db_url: str, plans: Path, prefix: str, n: int, interval: str) -> Iterator[list[LoopbackHTTPServer]]:
    """``n`` loopback services registered as PREFIX0.., each with the restart plan; all stopped at exit."""
    servers = [LoopbackHTTPServer() for _ in range(n)]
    try:
        for i, server in enumerate(servers):
            result = runner.invoke(cli, ["--db", db_url, "--plans", str(plans), "component", "add",
                                         f"{prefix}{i:0{len(str(n - 1))}d}", "--url", server.url, "--interval", interval,
                                         "--timeout", "300ms", "--failure-threshold", "2", "--plan", "svc"],
                                   catch_exceptions=False)
            assert result.exit_code == 0, result.output
        yield servers
    finally:
        for server in servers:
            server.crash()


def _states(db: Database) -> dict[str, str]:
    with db.read() as session:
        return dict(session.execute(select(Component.name, Component.state)).all())


def _incidents(db: Database) -> list[Incident]:
    with db.read() as session:
        return list(session.scalars(select(Incident).order_by(Incident.id)))


def _all_up(daemon, n: int) -> bool:
    return daemon.plane.live.counts().get(ComponentState.UP) == n


def test_two_of_six_down_a_third_that_hangs_is_detected_and_the_down_ones_restarted(db_url, runner, tmp_path) -> None:
    """Regression: 2 of 6 DOWN (33%) published MINIMAL, which stopped checking UP normal components
    (a third one that started hanging stayed `up`) and blocked the restarts of the two ("skipped by
    guard degradation"). Now the third is DOWN and the three are restarted (3 of 6 is not a mass
    outage: fewer than ``min_down``), and at 4 of 6 the blast-radius guard, not a level, holds further
    action."""
    stub, log = recording_stub(tmp_path)
    plans = _plans(tmp_path, stub)
    db = Database(db_url)
    with _fleet(runner, db_url, plans, "s", 6, "500ms") as servers, running_daemon(db_url, plans_path=plans) as daemon:
        poll(lambda: _all_up(daemon, 6), DEADLINE_S)
        servers[0].set_mode("500")
        servers[1].crash()
        poll(lambda: daemon.degradation.document()["level"] == "minimal", DEADLINE_S)  # 2 of 6: 33%
        servers[2].set_mode("hang")
        poll(lambda: _states(db)["s2"] == "down", DEADLINE_S)
        poll(lambda: {"s0", "s1", "s2"} <= set(_restarted(log)), DEADLINE_S)
        # 4 of 6 (67%, at least min_down): now the blast-radius guard holds s3, and says so
        servers[3].crash()
        held = poll(lambda: next((i for i in _incidents(db) if i.component_name == "s3"
                                  and i.status == "blocked"), None), DEADLINE_S)
        assert (held.details or {}).get("guard") == "blast_radius" and "4 of 6" in held.status_reason
        assert len([i for i in _incidents(db) if i.kind == "mass_outage"]) == 1
        assert sorted(_restarted(log)) == ["s0", "s1", "s2"]  # each once (attempts: 1)
        assert {s for n, s in _states(db).items() if n in ("s4", "s5")} == {"up"}
    db.dispose()


@pytest.mark.parametrize("broken", [10, 11], ids=["exactly-50%", "55%"])
def test_mass_outage_every_broken_one_detected_one_incident_no_restart_emergency(db_url, runner, tmp_path,
                                                                               broken: int) -> None:
    """Regression: with 110 of 200 broken at once, MINIMAL stopped checking the rest (32 never
    detected), so the fleet never reached 50% DOWN: no mass-outage incident and the level stayed
    MINIMAL; at exactly 50% the blast-radius guard ("more than") could never trip. Scaled to 20."""
    stub, log = recording_stub(tmp_path)
    plans = _plans(tmp_path, stub)
    db = Database(db_url)
    with _fleet(runner, db_url, plans, "m", 20, "2s") as servers, running_daemon(db_url, plans_path=plans) as daemon:
        poll(lambda: _all_up(daemon, 20), DEADLINE_S)
        for i, server in enumerate(servers[:broken]):  # at once: half refuse, half answer 500
            server.crash() if i % 2 else server.set_mode("500")
        names = {f"m{i:02d}" for i in range(broken)}
        poll(lambda: {n for n, s in _states(db).items() if s == "down"} == names, DEADLINE_S)
        outages = poll(lambda: [i for i in _incidents(db) if i.kind == "mass_outage"], DEADLINE_S)
        assert len(outages) == 1 and outages[0].status == "escalated"
        assert "of 20 components down at once (at least 50%)" in outages[0].reason
        poll(lambda: daemon.degradation.document()["level"] == "emergency", DEADLINE_S)
        # every broken one's incident is held by the blast-radius guard, none acted on
        poll(lambda: sum(1 for i in _incidents(db) if i.status == "blocked"
                         and (i.details or {}).get("guard") == "blast_radius") == broken, DEADLINE_S)
        assert _restarted(log) == []
        assert len([i for i in _incidents(db) if i.kind == "mass_outage"]) == 1
    db.dispose()


def test_operator_emergency_override_freezes_automation_and_says_so_everywhere(db_url, runner, tmp_path,
                                                                             caplog) -> None:
    """An operator's EMERGENCY override (any case on the command line) stops automatic recovery, not
    detection; the log, `status`, the page and the incident say why; clearing it lets the step run."""
    caplog.set_level(logging.INFO, logger="orchestrator")
    stub, log = recording_stub(tmp_path)
    plans = _plans(tmp_path, stub)
    db = Database(db_url)
    with (_fleet(runner, db_url, plans, "e", 4, "500ms") as servers,
          running_daemon(db_url, plans_path=plans, http="127.0.0.1:0") as daemon):
        base = poll(lambda: daemon.web is not None and daemon.web.url, DEADLINE_S).rstrip("/")
        poll(lambda: _all_up(daemon, 4), DEADLINE_S)
        result = runner.invoke(cli, ["--db", db_url, "degradation", "set", "EMERGENCY", "--for", "10m",
                                     "--reason", "failover drill"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        poll(lambda: daemon.degradation.document()["level"] == "emergency", DEADLINE_S)
        servers[0].set_mode("500")
        poll(lambda: _states(db)["e0"] == "down", DEADLINE_S)  # still checked
        blocked = poll(lambda: next((i for i in _incidents(db) if i.component_name == "e0"
                                     and i.status == "blocked"), None), DEADLINE_S)
        assert "operator EMERGENCY override" in blocked.status_reason
        assert _restarted(log) == []
        shown = runner.invoke(cli, ["--db", db_url, "status"], catch_exceptions=False).output
        assert "automation FROZEN" in shown and "failover drill" in shown
        page = requests.get(f"{base}/", timeout=10).text
        assert "automation FROZEN" in page
        assert "automation FROZEN" in caplog.text
        cleared = runner.invoke(cli, ["--db", db_url, "degradation", "clear"], catch_exceptions=False)
        assert cleared.exit_code == 0, cleared.output
        poll(lambda: _restarted(log) == ["e0"], DEADLINE_S)
        shown = runner.invoke(cli, ["--db", db_url, "status"], catch_exceptions=False).output
        assert "FROZEN" not in shown
    db.dispose()
