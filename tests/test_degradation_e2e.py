"""End to end with the real daemon, real loopback services and the real web server: a critical component
killed → EMERGENCY on the long-poll and in the file; components failing while it holds are still
checked and restarted (a level is for applications, never for the orchestrator's own loop); restored →
back to NORMAL one level per hold."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import requests

from orchestrator.cli import cli
from tests.daemon_helpers import poll, recording_stub, running_daemon
from tests.servers import LoopbackHTTPServer

HOLD_S = 2.0


def _plans(tmp_path: Path, stub: Path) -> Path:
    path = tmp_path / "plans.json"
    path.write_text(json.dumps({
        "version": 1,
        "limits": {"settle": "0s"},
        "plans": {"svc": {"steps": [{"strategy": "restart", "params": {"command": [str(stub), "{component.name}"]},
                                     "attempts": 1, "verify": {"deadline": "1s"}}]}},
        "degradation": {"evaluate_every": "500ms", "hold": f"{HOLD_S}s",
                        "rules": [{"when": "any_critical_down", "level": "emergency"}]},
    }))
    return path


def test_critical_down_emergency_everywhere_freezes_automation_then_steps_down(db_url, runner, tmp_path) -> None:
    stub, restarts = recording_stub(tmp_path)
    plans = _plans(tmp_path, stub)
    core, high, low = LoopbackHTTPServer(), LoopbackHTTPServer(), LoopbackHTTPServer()
    for name, server, criticality in (("core", core, "critical"), ("api", high, "high"), ("batch", low, "low")):
        result = runner.invoke(cli, ["--db", db_url, "--plans", str(plans), "component", "add", name, "--url", server.url,
                                     "--interval", "200ms", "--timeout", "150ms", "--failure-threshold", "2",
                                     "--criticality", criticality, "--plan", "svc"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    state_file = tmp_path / "degradation.json"
    try:
        with running_daemon(db_url, plans_path=plans, http="127.0.0.1:0", degradation_file=state_file) as daemon:
            base = poll(lambda: daemon.web is not None and daemon.web.url, 20).rstrip("/")
            api = f"{base}/api/v1/degradation"
            first = poll(lambda: (r := requests.get(api, timeout=5)).status_code == 200 and r.json(), 20)
            assert first["level"] == "normal" and first["features"]["analytics"] is True
            poll(lambda: daemon.plane.live.counts().get(_up()) == 3, 20)

            # the long-poll is waiting before the fault happens
            answers: list[tuple[float, requests.Response]] = []

            def long_poll() -> None:
                response = requests.get(api, params={"after": first["version"], "wait": "30s"}, timeout=40)
                answers.append((time.monotonic(), response))

            waiter = threading.Thread(target=long_poll)
            waiter.start()
            core.crash()
            waiter.join(30)
            assert answers, "the long-poll never answered"
            published = answers[0][1]
            assert published.status_code == 200 and published.json()["level"] == "emergency"
            assert published.headers["ETag"] == f'"{published.json()["version"]}"'
            assert published.headers["X-Degradation-Level"] == "emergency"
            assert "1 critical component down" in published.json()["reasons"][0]
            poll(lambda: json.loads(state_file.read_text())["level"] == "emergency", 5)
            # an ETag revalidation costs no body
            again = requests.get(api, headers={"If-None-Match": published.headers["ETag"]}, timeout=5)
            assert again.status_code == 304 and again.content == b""

            # regression: components failing while EMERGENCY holds were blocked by the level (a high one)
            # or not even checked (a low one). A fleet-health level never stops a check or a step.
            high.crash()
            low.crash()
            poll(lambda: _state(runner, db_url, "batch") == "down", 20)
            poll(lambda: {"api", "batch"} <= {line.split()[0] for line in _lines(restarts)}, 30)
            assert _incident(runner, db_url, "api", "blocked") is None

            # restored: one level per hold
            core.restart()
            poll(lambda: json.loads(state_file.read_text())["level"] == "normal", 30)
            # the file is written when the level is published, its history row on the next persist: wait for it
            history = poll(lambda: (h := _history(runner, db_url)) and h[0]["to"] == "normal" and h, 10)
            steps = [(h["from"], h["to"]) for h in reversed(history) if h["scope"] == "global"]
            assert steps == [("normal", "emergency"), ("emergency", "minimal"), ("minimal", "degraded"),
                             ("degraded", "normal")]
            ats = [h["at"] for h in reversed(history) if h["scope"] == "global"]
            gaps = [(_t(b) - _t(a)) for a, b in zip(ats[1:], ats[2:], strict=False)]
            assert all(gap >= HOLD_S - 0.05 for gap in gaps), gaps
    finally:
        for server in (core, high, low):
            server.crash()


def _history(runner, db_url: str) -> list[dict]:
    """The global scope's level changes, newest first."""
    listed = json.loads(runner.invoke(cli, ["--db", db_url, "degradation", "history", "--json"],
                                      catch_exceptions=False).output)
    return [h for h in listed if h["scope"] == "global"]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _state(runner, db_url: str, name: str) -> str:
    listed = json.loads(runner.invoke(cli, ["--db", db_url, "component", "list", "--json"],
                                      catch_exceptions=False).output)
    return next(c["state"] for c in listed if c["name"] == name)


def _up():
    from orchestrator.core.states import ComponentState

    return ComponentState.UP


def _t(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def _incident(runner, db_url: str, component: str, status: str):
    listed = json.loads(runner.invoke(cli, ["--db", db_url, "incidents", "list", "--component", component, "--json"],
                                      catch_exceptions=False).output)
    return next((i for i in listed if i["status"] == status), None)
