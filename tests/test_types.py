"""The type checker's ratchet (tools/mypy_baseline.py): the strict packages are clean and the rest of the
package has no mypy error that mypy-baseline.txt does not hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_no_worse_than_the_baseline():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "mypy_baseline.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
