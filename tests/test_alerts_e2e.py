"""End to end with Debian's real ``prometheus`` and ``prometheus-alertmanager``: a rule fires on a series from
a loopback exporter this test controls, Alertmanager posts its webhook to the real daemon (``run --http``),
the daemon opens an incident with source ``alert``, restarts the service through a stub ``systemctl``
(recording its argv), verifies with the component's own check, and the alert resolves.

Without the binaries the test skips, or fails when ORCHESTRATOR_TEST_ALERTMANAGER=required (CI).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.demo.service import free_port
from tests.daemon_helpers import poll, spawn

ENV = "ORCHESTRATOR_TEST_ALERTMANAGER"
TOKEN = "e2e-alertmanager-token"
RUNBOOK = "https://runbooks.example.com/svc-down"


def _binaries() -> tuple[str, str]:
    found = shutil.which("prometheus"), shutil.which("prometheus-alertmanager")
    if None in found:
        if os.environ.get(ENV) == "required":
            pytest.fail(f"prometheus and prometheus-alertmanager are required ({ENV}=required): "
                        "apt-get install prometheus prometheus-alertmanager")
        pytest.skip("prometheus / prometheus-alertmanager are not installed (Debian: apt-get install "
                    "prometheus prometheus-alertmanager)")
    return found  # type: ignore[return-value]


class Exporter:
    """The service: ``/metrics`` says ``svc_healthy 0|1`` and ``/health`` answers 200 or 503. Broken by the
    test; repaired by its restart (the stub systemctl writes the log this reads)."""

    def __init__(self, restarts: Path) -> None:
        self.broken = False
        self.restarts = restarts
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                healthy = owner.healthy()
                if self.path == "/metrics":
                    body = f"# TYPE svc_healthy gauge\nsvc_healthy {int(healthy)}\n".encode()
                    status = 200
                else:
                    body, status = (b"ok", 200) if healthy else (b"down", 503)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def healthy(self) -> bool:
        return not self.broken or self.restarts.exists()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _cli(home: Path, plans: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", "--plans", str(plans), *args],
                          env={**os.environ, "ORCHESTRATOR_HOME": str(home)}, capture_output=True, text=True,
                          timeout=60)


def _write_configs(tmp: Path, exporter_port: int, am_port: int, web_port: int) -> tuple[Path, Path]:
    (tmp / "rules.yml").write_text(f"""groups:
- name: svc
  interval: 1s
  rules:
  - alert: SvcDown
    expr: svc_healthy == 0
    labels: {{component: svc, severity: page}}
    annotations: {{summary: "svc reports unhealthy", runbook_url: "{RUNBOOK}"}}
""")
    prometheus = tmp / "prometheus.yml"
    prometheus.write_text(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{tmp / 'rules.yml'}"]
alerting:
  alertmanagers: [{{static_configs: [{{targets: ["127.0.0.1:{am_port}"]}}]}}]
scrape_configs:
- job_name: svc
  static_configs: [{{targets: ["127.0.0.1:{exporter_port}"]}}]
""")
    alertmanager = tmp / "alertmanager.yml"
    alertmanager.write_text(f"""route: {{receiver: orchestrator, group_by: [alertname, component], group_wait: 1s,
  group_interval: 1s, repeat_interval: 1h}}
receivers:
- name: orchestrator
  webhook_configs:
  - url: http://127.0.0.1:{web_port}/api/v1/alerts/alertmanager
    send_resolved: true
    http_config: {{authorization: {{credentials: {TOKEN}}}}}
""")
    return prometheus, alertmanager


def test_an_alertmanager_alert_restarts_the_service_and_resolves(tmp_path: Path) -> None:
    prometheus_bin, alertmanager_bin = _binaries()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    restarts = tmp_path / "restarts.log"
    stub = bindir / "systemctl"
    stub.write_text(f"#!{sys.executable}\nimport sys\nopen({str(restarts)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n")
    stub.chmod(0o755)
    exporter = Exporter(restarts)
    am_port, web_port = free_port(), free_port()
    prometheus_yml, alertmanager_yml = _write_configs(tmp_path, exporter.port, am_port, web_port)
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"version": 1, "limits": {"settle": 0}, "plans": {"svc": {"steps": [
        {"strategy": "restart", "params": {"preset": "systemd", "unit": "svc.service"},
         "verify": {"interval": "200ms", "successes": 1, "deadline": "20s"}}]}}}))
    # a high failure threshold: the alert, not the check, notices first; the check still verifies the restart
    added = _cli(tmp_path, plans, "component", "add", "svc", "--url", f"http://127.0.0.1:{exporter.port}/health",
                 "--interval", "5s", "--timeout", "1s", "--failure-threshold", "20", "--plan", "svc")
    assert added.returncode == 0, added.stderr
    env = {"ORCHESTRATOR_API_TOKEN": TOKEN, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    daemon = spawn(["--plans", str(plans), "run", "--http", f"127.0.0.1:{web_port}"], tmp_path, env)
    try:
        with _process([alertmanager_bin, f"--config.file={alertmanager_yml}", f"--storage.path={tmp_path / 'am'}",
                       f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
                      tmp_path / "alertmanager.log"), \
             _process([prometheus_bin, f"--config.file={prometheus_yml}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                       f"--web.listen-address=127.0.0.1:{free_port()}", "--rules.alert.resend-delay=1s"],
                      tmp_path / "prometheus.log"):
            poll(lambda: json.loads(_cli(tmp_path, plans, "status", "--json").stdout)["components"][0]["state"] == "up", 30)
            exporter.broken = True

            def incidents():
                return json.loads(_cli(tmp_path, plans, "incidents", "list", "--json").stdout)

            def resolved():
                found = incidents()
                return found and found[0]["status"] == "resolved" and found[0]

            incident = poll(resolved, 90)
            assert (incident["source"], incident["resolution"]) == ("alert", "auto"), incident
            shown = json.loads(_cli(tmp_path, plans, "incidents", "show", str(incident["id"]), "--json").stdout)
            [step] = shown["journal"]
            assert (step["strategy"], step["status"], step["executed"]) == ("restart", "succeeded", True)
            assert restarts.read_text() == "restart svc.service\n"  # once, by the stub

            def alert_resolved():
                alerts = json.loads(_cli(tmp_path, plans, "incidents", "show", str(incident["id"]), "--json").stdout)["alerts"]
                return alerts and all(a["status"] == "resolved" for a in alerts) and alerts

            [alert] = poll(alert_resolved, 60)
            assert (alert["name"], alert["origin"], alert["runbook_url"]) == ("SvcDown", "alertmanager", RUNBOOK)
            assert alert["labels"]["severity"] == "page" and alert["ends_at"] is not None
            assert len(incidents()) == 1  # the alert's repeats and its resolution opened nothing more
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        exporter.close()
