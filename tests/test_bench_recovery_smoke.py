"""Smoke runs of bench/recovery.py and bench/vs_monit.py at a tiny size (real fleet, daemon, restart script)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import recovery  # noqa: E402 - bench scripts are files, not a package
import vs_monit  # noqa: E402


def test_recovery_bench_restarts_each_broken_service_once() -> None:
    lines: list[str] = []
    result = recovery.run_pass(count=12, broken=3, max_concurrent=4, settle="0s", timeout_s=20,
                               idle_sample_s=0.2, tail_s=0.5, say=lines.append)
    recovery.report(result, 12, say=lines.append)
    assert recovery.ok(result), "\n".join(lines)
    assert sorted(e.fault for e in result.episodes) == ["500", "crash", "hang"]
    assert len(result.fault_to_action_s) == 3 and len(result.action_to_verified_s) == 3


@pytest.mark.skipif(not vs_monit.monit_installed(), reason=vs_monit.INSTALL_HINT)
def test_recovery_bench_monit_pass_restarts_each_broken_service_once() -> None:
    lines: list[str] = []
    result = recovery.run_monit_pass(count=12, broken=3, timeout_s=20, monit_timeout_s=1, idle_sample_s=0.2,
                                     tail_s=1.5, say=lines.append)
    recovery.report_monit(result, 12, 1, say=lines.append)
    assert recovery.monit_ok(result), "\n".join(lines)
    assert sorted(e.fault for e in result.episodes) == ["500", "crash", "hang"]
    assert result.actions == 3 and result.duplicates == 0 and result.unexpected == 0
    recovery.report_ratio(result, result, say=lines.append)
    assert "ratio to Monit (fault→action median): 1.00 (target <= 0.7)" in lines[-2]


def test_vs_monit_acts_once_per_fault_orchestrator_and_monit_if_installed() -> None:
    """The orchestrator side always runs; Monit joins when installed (with a 1 s timeout to stay short)."""
    with_monit = vs_monit.monit_installed()
    lines: list[str] = []
    contenders, duplicates = vs_monit.run(1, ["0s"], with_monit=with_monit, monit_timeout_s=1, warmup_s=2.5,
                                          gap_s=(0.2, 0.4), tail_s=0.5, say=lines.append)
    assert [c.prefix for c in contenders] == (["m"] if with_monit else []) + ["o0"]
    assert duplicates == 0 and all(c.missed == 0 for c in contenders), "\n".join(lines)
    assert all(len(c.latencies[f]) == 1 for c in contenders for f in vs_monit.FAULTS)
    vs_monit.report(contenders, duplicates, say=lines.append)


@pytest.mark.skipif(vs_monit.monit_installed(), reason="monit is installed: the run above compared with it")
def test_vs_monit_without_monit_says_how_to_install_it(capsys) -> None:
    assert vs_monit.main(["--rounds", "1"]) == 2
    assert "apt-get install -y monit" in capsys.readouterr().err
