"""Detection and recovery with the shipped defaults (issue 14, Tests; docs/guarantees.md I1, I5).

Six loopback services checked every second (thresholds and everything else left at their defaults),
the shipped recovery_strategies.json (only its notifications sent to a loopback webhook instead of
mail and the internet), the real daemon as a process on each database. Three services break at once
— one crashes, one answers 500, one hangs — and each must be DOWN within 8 s, then restarted exactly
once by the ``process`` plan's restart command and verified (incident resolved ``auto``) within 30 s.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.daemon_helpers import poll
from tests.invariants import read_actions
from tests.servers import LoopbackHTTPServer
from tests.soak_rig import RestartControl, soak_plans

#: The issue's bounds: DOWN within 8 s of the fault, restarted once and verified within 30 s.
DOWN_WITHIN_S = 8.0
VERIFIED_WITHIN_S = 30.0
BROKEN = {"svc1": "crash", "svc2": "500", "svc3": "hang"}


def _states(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT name, state FROM components")).all())


def _resolutions(engine: sa.Engine) -> dict[str, list[tuple[str, str | None]]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT component_name, status, resolution, status_reason FROM incidents "
                                    "WHERE kind = 'component' ORDER BY id")).all()
    out: dict[str, list[tuple[str, str | None, str | None]]] = {}
    for name, status, resolution, reason in rows:
        out.setdefault(name, []).append((status, resolution, reason))
    return out


@pytest.mark.timeout(240)  # start-up, the 30 s bound and a stop on a loaded machine
def test_three_of_six_broken_are_down_within_8s_and_restarted_once(db, db_url: str, tmp_path: Path) -> None:
    servers = {f"svc{i}": LoopbackHTTPServer("ok") for i in range(1, 7)}
    hooks = LoopbackHTTPServer("ok", path="/hook")

    def repair(name: str) -> bool:
        servers[name].restart()
        servers[name].set_mode("ok")
        return True

    def state(name: str) -> dict:
        mode = servers[name]._mode if servers[name]._server is not None else "crash"
        return {"healthy": mode == "ok", "fault": mode, "race": False, "sleep_s": 0.1}

    control = RestartControl(state, repair)
    log = tmp_path / "actions.jsonl"
    stub = control.write_stub(tmp_path / "restart-stub", log)
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps(soak_plans(None, f"http://127.0.0.1:{hooks.port}/hook")))
    env = {"ORCHESTRATOR_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    components = [{"name": name, "url": server.url, "interval": "1s", "timeout": "500ms", "plan": "process",
                   "vars": {"restart_script": str(stub)}} for name, server in servers.items()]
    (tmp_path / "components.json").write_text(json.dumps({"components": components}))
    base = [sys.executable, "-m", "orchestrator", "--db", db_url, "--plans", str(plans)]
    subprocess.run([*base, "apply", "-f", str(tmp_path / "components.json")], env=env, check=True,
                   capture_output=True, timeout=60)
    engine = sa.create_engine(db_url)
    with (tmp_path / "daemon.log").open("ab") as out:
        daemon = subprocess.Popen([*base, "run", "--check-processes", "0"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        poll(lambda: set(_states(engine).values()) == {"up"}, 60, 0.1)
        broken_at = time.monotonic()
        for name, fault in BROKEN.items():
            servers[name].crash() if fault == "crash" else servers[name].set_mode(fault)

        def all_down() -> bool:
            states = _states(engine)
            return all(states[name] == "down" for name in BROKEN)

        try:
            poll(all_down, DOWN_WITHIN_S - (time.monotonic() - broken_at), 0.1)
        except AssertionError:
            raise AssertionError(f"not all DOWN within {DOWN_WITHIN_S:.0f}s: {_states(engine)}") from None

        def all_verified() -> bool:
            done = _resolutions(engine)
            return all(done.get(name, [("", None, None)])[-1][:2] == ("resolved", "auto") for name in BROKEN)

        try:
            poll(all_verified, VERIFIED_WITHIN_S - (time.monotonic() - broken_at), 0.1)
        except AssertionError:
            raise AssertionError(f"not all verified within {VERIFIED_WITHIN_S:.0f}s: incidents "
                                 f"{_resolutions(engine)}, actions {read_actions(log)}, states "
                                 f"{_states(engine)}") from None
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(45)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(10)
        control.stop()
        for server in [*servers.values(), hooks]:
            server.stop()
        engine.dispose()
    started = [a["name"] for a in read_actions(log) if a.get("event") == "start"]
    assert sorted(started) == sorted(BROKEN), f"each broken service restarted exactly once: {started}"
    assert all(not a["healthy_before"] for a in read_actions(log) if a.get("event") == "start")
