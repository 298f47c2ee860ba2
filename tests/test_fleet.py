"""Smoke test of bench/fleet.py: 50 endpoints, a few requests, every control mode."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from orchestrator.core.check_spec import CheckSpec
from orchestrator.health.checkers import HttpChecker

FLEET = Path(__file__).resolve().parent.parent / "bench" / "fleet.py"
sys.path.insert(0, str(FLEET.parent))

from _common import read_line  # noqa: E402 - bench helpers are files, not a package


@pytest.fixture(scope="module")
def fleet() -> Iterator[dict]:
    proc = subprocess.Popen([sys.executable, str(FLEET), "--count", "50", "--base-port", "0"],
                            stdout=subprocess.PIPE)  # fmt: skip
    try:
        ready = json.loads(read_line(proc, timeout_s=20))
        ready["control"] = f"http://127.0.0.1:{ready['control_port']}"
        yield ready
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _control(fleet: dict, path: str) -> dict:
    resp = requests.get(fleet["control"] + path, timeout=5)
    resp.raise_for_status()
    return resp.json()


def test_fleet_serves_and_switches_modes(fleet: dict) -> None:
    ports = fleet["ports"]
    assert len(set(ports)) == 50
    checker = HttpChecker()
    spec = {port: CheckSpec(url=f"http://127.0.0.1:{port}/health", json_conditions=['$.status == "UP"'])
            for port in ports[:4]}  # fmt: skip
    try:
        assert all(checker.check(spec[p], timeout_s=2).ok for p in ports[:4])

        _control(fleet, f"/mode?port={ports[0]}&mode=500")
        _control(fleet, f"/mode?port={ports[1]}&mode=hang")
        _control(fleet, f"/mode?port={ports[2]}&mode=crash")
        assert checker.check(spec[ports[0]], timeout_s=2).error == "status 500 not in 200-299"
        assert checker.check(spec[ports[1]], timeout_s=0.5).error == "timeout after 0.5s"
        assert checker.check(spec[ports[2]], timeout_s=2).error == "connection refused"
        assert checker.check(spec[ports[3]], timeout_s=2).ok  # the others are untouched

        status = _control(fleet, "/status")
        assert [status["modes"][str(p)] for p in ports[:4]] == ["500", "hang", "crash", "ok"]
        assert status["listening"] == 49

        _control(fleet, f"/mode?port={ports[0]},{ports[1]}&mode=ok")
        _control(fleet, f"/mode?port={ports[2]}&mode=recover")
        assert all(checker.check(spec[p], timeout_s=2).ok for p in ports[:4])
        assert _control(fleet, "/status")["listening"] == 50
    finally:
        checker.close()


def test_fleet_rejects_bad_commands(fleet: dict) -> None:
    resp = requests.get(fleet["control"] + f"/mode?port={fleet['ports'][0]}&mode=explode", timeout=5)
    assert resp.status_code == 400 and "mode must be one of" in resp.json()["error"]
    resp = requests.get(fleet["control"] + "/mode?port=1&mode=ok", timeout=5)
    assert resp.status_code == 400 and "not a fleet port: 1" in resp.json()["error"]
