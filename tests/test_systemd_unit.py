"""The shipped unit matches what the daemon does: sd_notify readiness, watchdog, reload, state dir."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "systemd" / "orchestrator.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(UNIT)
    return parser


def test_unit_uses_notify_watchdog_reload_and_state_directory() -> None:
    service = _unit()["Service"]
    assert service["Type"] == "notify"
    assert service["ExecStart"].split()[1:3] == ["run", "--log-format"]
    assert "-HUP" in service["ExecReload"]
    assert service["StateDirectory"] == "orchestrator"
    assert service["Environment"]  # ORCHESTRATOR_HOME points at the state directory
    assert int(service["WatchdogSec"].rstrip("s")) >= 10
    for hardening in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
        assert hardening in service


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_accepts_the_unit(tmp_path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(UNIT)], capture_output=True, text=True,
                            timeout=60)
    problems = [line for line in result.stderr.splitlines()
                if "orchestrator.service" in line and "Command /opt/orchestrator" not in line
                and "User" not in line]
    assert not problems, result.stderr
