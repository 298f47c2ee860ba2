"""The installed console script, run as a real subprocess (no Click runner in between)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("orchestrator", path=os.path.dirname(sys.executable)) or shutil.which("orchestrator")
    assert exe, "console script 'orchestrator' is not installed"
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=60)


def test_console_script_add_list_and_bad_input(tmp_path) -> None:
    env = {**os.environ, "ORCHESTRATOR_HOME": str(tmp_path)}
    added = _run("component", "add", "api", "--url", "http://127.0.0.1:8080/health", "--interval", "5s", env=env)
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "orchestrator.db").exists(), "default database lives in ORCHESTRATOR_HOME"
    listed = _run("component", "list", "--json", env=env)
    assert [c["name"] for c in json.loads(listed.stdout)] == ["api"]
    bad = _run("component", "add", "x;rm -rf /", "--url", "http://a/", env=env)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_python_dash_m_works(tmp_path) -> None:
    env = {**os.environ, "ORCHESTRATOR_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "orchestrator", "--version"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0 and "orchestrator" in result.stdout
