"""`orchestrator run` with the shipped recovery_strategies.json recovers a really crashed service, and the
incident shows every step, attempt, output and verification."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from orchestrator.demo import service
from tests.daemon_helpers import poll, spawn

ROOT = Path(__file__).resolve().parents[1]


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", "--plans", str(ROOT / "recovery_strategies.json"),
                           *args], env={**os.environ, "ORCHESTRATOR_HOME": str(home)}, capture_output=True,
                          text=True, timeout=60)


def test_shipped_plan_restarts_a_crashed_service_and_records_every_step(tmp_path) -> None:
    script = service.write_restart_script(tmp_path)
    port = service.free_port()
    service.start(tmp_path, "shop", port)
    added = _cli(tmp_path, "component", "add", "shop", "--url", f"http://127.0.0.1:{port}/health",
                 "--interval", "1s", "--timeout", "500ms", "--failure-threshold", "2", "--plan", "process",
                 "--var", f"restart_script={script}")
    assert added.returncode == 0, added.stderr
    daemon = spawn(["--plans", str(ROOT / "recovery_strategies.json"), "run"], tmp_path)
    try:
        poll(lambda: json.loads(_cli(tmp_path, "status", "--json").stdout)["components"][0]["state"] == "up", 20)
        old_pid = int((tmp_path / "shop.pid").read_text())
        os.kill(old_pid, signal.SIGKILL)

        def resolved():
            listed = json.loads(_cli(tmp_path, "incidents", "list", "--json").stdout)
            return listed and listed[0]["status"] == "resolved" and listed[0]

        incident = poll(resolved, 40)
        assert incident["resolution"] == "auto"
        shown = json.loads(_cli(tmp_path, "incidents", "show", str(incident["id"]), "--json").stdout)
        [step] = shown["journal"]
        assert (step["strategy"], step["status"], step["executed"]) == ("restart", "succeeded", True)
        assert "restarted shop" in step["output"]
        assert step["verification"]["passed"] is True
        assert int((tmp_path / "shop.pid").read_text()) != old_pid  # a new process really serves it
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
        service.stop(tmp_path, "shop")


def test_demo_command_runs_the_whole_loop_and_shows_the_page_url_first(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "demo", "--quiet", "--before-crash", "0",
                             "--linger", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "ORCHESTRATOR_HOME": str(tmp_path)})
    lines, page = [], None
    try:
        for line in proc.stdout:
            lines.append(line)
            if "status page: " in line and page is None:
                url = line.split("status page: ", 1)[1].split()[0]
                with urllib.request.urlopen(url, timeout=10) as response:  # live while the demo runs
                    page = response.read().decode()
        assert proc.wait(120) == 0, proc.stderr.read()
    finally:
        proc.kill()
    output = "".join(lines)
    assert page is not None and all(name in page for name in ("demo-api", "demo-db", "demo-worker"))
    assert output.index("status page: ") < output.index("Crashing demo-api")
    assert "resolved (auto)" in output
