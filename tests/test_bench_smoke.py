"""The benchmark scripts still run: a very short run of each, asserting it prints its figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _start(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(BENCH / script), *args], text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM lets the script stop the fleet and daemon it started; SIGKILL if it does not."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _output(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    return out


def test_checks_and_detect_print_their_figures() -> None:
    # Both at once: each is mostly waiting for its daemon.
    checks = _start("checks.py", "--count", "20", "--interval", "1", "--timeout", "0.5", "--warmup", "1",
                    "--duration", "1")
    detect = _start("detect.py", "--trials", "1")
    try:
        checks_out, detect_out = _output(checks), _output(detect)
    finally:
        _stop(checks)
        _stop(detect)
    for figure in ("checks/s:", "lateness healthy: p50", "daemon CPU per check:", "ratio daemon/bare:",
                   "daemon peak RSS:", "db bytes per check:", "cores busy:"):
        assert figure in checks_out, checks_out
    assert re.search(r"^checks/s: \d+ achieved / 20 scheduled$", checks_out, re.MULTILINE), checks_out
    for fault in ("crash", "500", "hang"):
        assert any(line.split()[:1] == [fault] for line in detect_out.splitlines()), detect_out


def test_web_prints_its_figures() -> None:
    """bench/web.py's three parts on a tiny scale (the full run is documented in BENCHMARKS.md)."""
    proc = _start("web.py", "--components", "30", "--incidents", "60", "--requests", "2", "--fleet", "5",
                  "--settle", "1", "--window", "1", "--rounds", "1", "--results", "3000",
                  "--report-incidents", "20")
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        _stop(proc)
    assert proc.returncode == 0, err[-2000:]
    for url in ("/", "/api/v1/components", "/metrics", "/api/v1/status"):
        assert re.search(rf"^    {re.escape(url)} +p50 +[\d.]+ ms  p95", out, re.MULTILINE), out
    assert "--no-metrics-per-component:" in out
    assert re.search(r"all rounds, no web load: +p99 ≤ [\d.]+ ms over \d+ checks", out), out
    assert re.search(r"all rounds, 10 scrapes/s \+ 10 pages/s: p99 ≤ [\d.]+ ms", out), out
    assert re.search(r"^report --since 30d over 3000 results, 20 incidents: [\d.]+ s", out, re.MULTILINE), out


def test_push_prints_its_figures() -> None:
    """bench/push.py on a tiny scale (the full run is documented in BENCHMARKS.md)."""
    proc = _start("push.py", "--monitors", "40", "--window", "1", "--idle", "1", "--period", "11", "--checks", "5",
                  "--check-window", "2")
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        _stop(proc)
    assert proc.returncode == 0, err[-2000:]
    assert re.search(r"^push monitors: 40, pings: 40 at \d+/s, errors: 0$", out, re.MULTILINE), out
    assert re.search(r"^ping-to-recorded: p50 [\d.]+ ms, p99 [\d.]+ ms", out, re.MULTILINE), out
    assert re.search(r"^CPU per ping: [\d.]+ ms .*\nCPU per HTTP check: [\d.-]+ ms", out, re.MULTILINE), out
    assert re.search(r"^late detection \(detected - expected\): p50 -?\d+ ms, p99 -?\d+ ms, .* over 40 monitors", out,
                     re.MULTILINE), out
