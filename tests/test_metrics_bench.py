"""bench/web.py's /metrics part still runs and prints its figures (a tiny run; BENCHMARKS.md has the full one)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "web.py"


def test_the_metrics_benchmark_prints_its_figures() -> None:
    proc = subprocess.Popen([sys.executable, str(BENCH), "--part", "metrics", "--components", "30",
                             "--metrics-incidents", "20", "--scrapes", "2"],
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    figure = r"p50 +[\d.]+ ms  p95 +[\d.]+ ms +\d+ KiB +\d+ series  CPU +[\d.]+ ms a scrape"
    for flag in ("--metrics-per-component:", "--no-metrics-per-component:"):
        assert flag in out, out
    assert len(re.findall(rf"^    (text|openmetrics) +{figure} = +[\d.]+ % of a core", out, re.MULTILINE)) == 4, out
    assert len(re.findall(rf"^    (with|without) +{figure}", out, re.MULTILINE)) == 2, out
