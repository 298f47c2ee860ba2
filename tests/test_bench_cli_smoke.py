"""bench/cli.py still runs and prints its figures (one round)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "cli.py"


def test_cli_bench_prints_a_ratio_for_each_command() -> None:
    result = subprocess.run([sys.executable, str(BENCH), "--runs", "1"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for label in ('python3 -c "import click"', "orchestrator --help", "orchestrator status",
                  "orchestrator component list"):
        assert re.search(rf"^{re.escape(label)} +\d+\.\d+ +\d+\.\d+ +\d+\.\d+$", result.stdout, re.M), label
