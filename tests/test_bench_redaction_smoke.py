"""bench/redaction.py still runs and prints its figures (a very short run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "redaction.py"


def test_redaction_bench_prints_its_figures() -> None:
    result = subprocess.run([sys.executable, str(BENCH), "--records", "200", "--views", "20"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for label in ("log record, redacting filter", "redact(), typical line", "component view (redacted)"):
        assert label in result.stdout
