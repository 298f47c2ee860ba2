"""The shipped unit matches what the daemon does: sd_notify readiness, watchdog, reload, state dir."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
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
    assert service["ExecStart"].split()[:4] == ["/usr/bin/env", "orchestrator", "run", "--log-format"]
    assert service["Environment"] == "ORCHESTRATOR_CONFIG=/etc/orchestrator/orchestrator.toml"
    assert "-HUP" in service["ExecReload"]
    assert service["StateDirectory"] == "orchestrator"
    assert int(service["WatchdogSec"].rstrip("s")) >= 10
    for hardening in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
        assert hardening in service


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_accepts_the_unit_as_shipped_and_as_printed(tmp_path) -> None:
    """As shipped (ExecStart through /usr/bin/env) and as `orchestrator init --print-unit` prints it for
    this installation (ExecStart at its own script): no complaint at all, the ExecStart path included."""
    printed = tmp_path / "orchestrator.service"
    made = subprocess.run([sys.executable, "-m", "orchestrator", "init", "--print-unit"], capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    printed.write_text(made.stdout)
    for unit in (UNIT, printed):
        result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True,
                                text=True, timeout=60)
        problems = [line for line in result.stderr.splitlines() if "orchestrator.service" in line]
        assert result.returncode == 0 and not problems, result.stderr
