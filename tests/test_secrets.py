"""No secret leaves the process: marker secrets are planted everywhere, every output is grepped.

Component ``a`` holds its secrets in the database (URL password, backup_url password, an Authorization
and an X-Api-Token header, a ``--secret-var``, a var named ``admin_token``); component ``r`` only
references its own through ``${env:…}``. A real daemon checks both (the loopback endpoint insists on
the right credentials, so ``r``'s references must be resolved in memory), breaks ``a``, runs a notify
step (a webhook whose body renders ``{component.url}``) and a restart step whose stub command echoes the
secrets and prints ``--password``/``-p``/``PASSWORD=`` values. Then every CLI command (with and
without --json), every report format, the daemon log, the webhook bodies received and a dump of the
whole database are searched: ``a``'s markers may appear only in the components table's definition
columns (the daemon needs them), ``r``'s nowhere at all.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.core import logs, redaction
from orchestrator.db.engine import Database
from tests.daemon_helpers import poll

# Component a: secrets stored in the database.
URL_PW, BACKUP_PW, AUTH, API_TOKEN = "urlpwMARKa1", "backupMARKa2", "authMARKa3", "apitokMARKa4"
SECRET_VAR, ADMIN_TOKEN, OUTPUT_PW, WEBHOOK_SECRET = "secvarMARKa5", "adminMARKa6", "outpwMARKa7", "hookMARKa8"
# Component r: secrets only referenced, the values live in the daemon's environment.
REF_ENV = {"T_R_PW": "rpwMARKr1", "T_R_TOKEN": "rtokMARKr2", "T_R_AUTH": "rauthMARKr3", "T_R_ADMIN": "radmMARKr4"}
STORED = [URL_PW, BACKUP_PW, AUTH, API_TOKEN, SECRET_VAR, ADMIN_TOKEN]
NEVER = [OUTPUT_PW, WEBHOOK_SECRET, *REF_ENV.values()]
#: where the daemon needs a's secrets, and so the only place they may be
DEFINITION_COLUMNS = {"url", "check_spec", "vars", "secret_vars", "backup_url"}


class Endpoint:
    """Health endpoints that answer 200 only to the right credentials, and a webhook receiver."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag  # the restart stub creates it: a is healthy again
        self.broken = False
        self.authorised: dict[str, int] = {}
        self.bodies: list[str] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(owner.status(self.path, dict(self.headers.items())))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                with owner.lock:
                    owner.bodies.append(body)
                self._answer(200)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def status(self, path: str, headers: dict[str, str]) -> int:
        expected = {"/a": ("auser", URL_PW, API_TOKEN), "/r": ("ruser", REF_ENV["T_R_PW"], REF_ENV["T_R_TOKEN"])}
        if path not in expected:
            return 200
        user, password, token = expected[path]
        basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if headers.get("Authorization") != basic or headers.get("X-Api-Token") != token:
            return 401
        with self.lock:
            self.authorised[path] = self.authorised.get(path, 0) + 1
        if path == "/a" and self.broken and not self.flag.exists():
            return 500
        return 200

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[Endpoint]:
    server = Endpoint(tmp_path / "healed")
    yield server
    server.stop()


def _restart_stub(tmp_path: Path) -> Path:
    """A stand-in for systemctl: records its argv, echoes it and some passwords, heals ``a``."""
    script = tmp_path / "restart-stub"
    script.write_text(f"""#!{sys.executable}
import sys, pathlib
pathlib.Path({str(tmp_path / "argv.json")!r}).write_text(__import__("json").dumps(sys.argv[1:]))
print("restarting with", " ".join(sys.argv[1:]))
print("mysql --password {OUTPUT_PW} -p {OUTPUT_PW} -p{OUTPUT_PW} --password={OUTPUT_PW} PASSWORD={OUTPUT_PW}")
pathlib.Path({str(tmp_path / "healed")!r}).touch()
""")
    script.chmod(0o755)
    return script


def _plans(tmp_path: Path, port: int, script: Path) -> Path:
    hook = {"url": f"http://127.0.0.1:{port}/hook", "secret": WEBHOOK_SECRET}
    plans = {
        "version": 1,
        "defaults": {"verify": {"interval": "200ms", "successes": 1, "deadline": "10s"},
                     "backoff": {"base": "100ms", "cap": "200ms"}},
        "limits": {"settle": "0s", "min_components": 10},
        "notifications": {"webhooks": [hook], "group_window": "0s",
                          "events": ["opened", "recovering", "step_failed", "escalated", "resolved"]},
        "plans": {"svc": {"steps": [
            {"strategy": "notify", "attempts": 1, "params": {
                "webhooks": [hook],
                "message": "{component.name} down at {component.url}, token {vars.admin_token}, {vars.dbconn}"}},
            {"strategy": "restart", "attempts": 2, "params": {
                "command": [str(script), "{component.name}", "{component.url}", "{vars.admin_token}",
                            "{vars.dbconn}", "{component.backup_url}"]}},
        ]}},
    }
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(plans))
    return path


def _components(tmp_path: Path, port: int, *, variant: str = "") -> Path:
    base = f"127.0.0.1:{port}"
    text = f"""
components:
  - name: a
    url: http://auser:{URL_PW}@{base}/a
    backup_url: http://buser:{BACKUP_PW}@{base}/b
    interval: 500ms
    timeout: 400ms
    failure_threshold: 2
    success_threshold: 1
    plan: svc
    check:
      headers: {{Authorization: "Bearer {AUTH}", X-Api-Token: "{API_TOKEN}", X-Note: "{variant}"}}
  - name: r
    url: http://ruser:${{env:T_R_PW}}@{base}/r
    interval: 500ms
    timeout: 400ms
    plan: svc
    vars: {{admin_token: "${{env:T_R_ADMIN}}"}}
    secret_vars: {{dbconn: "${{env:T_R_ADMIN}}"}}
    check:
      headers: {{Authorization: "Bearer ${{env:T_R_AUTH}}", X-Api-Token: "${{env:T_R_TOKEN}}"}}
"""
    path = tmp_path / f"components{variant}.yaml"
    path.write_text(text)
    return path


class Outputs:
    """Everything the process let out, by where it came from."""

    def __init__(self, db_url: str, plans: Path, log: list[str]) -> None:
        self.db_url, self.plans, self.log = db_url, plans, log
        self.texts: dict[str, str] = {}

    def cli(self, *args: str, ok: tuple[int, ...] = (0,)) -> str:
        redaction._known = frozenset()  # each command is a fresh process: nothing remembered from another
        result = CliRunner().invoke(cli, ["--db", self.db_url, "--plans", str(self.plans), *args])
        assert result.exit_code in ok, f"{args}: {result.output}"
        self.texts[" ".join(args)] = result.stdout + result.stderr
        return result.stdout

    def every_command(self, tmp_path: Path, components: Path, label: str) -> None:
        for json_flag in ((), ("--json",)):
            self.cli("component", "list", *json_flag)
            self.cli("component", "show", "a", *json_flag)
            self.cli("component", "show", "r", *json_flag)
            self.cli("status", *json_flag)
            self.cli("check", "a", *json_flag, ok=(0, 1))
            self.cli("check", "r", *json_flag, ok=(0, 1))
            self.cli("apply", "-f", str(components), "--dry-run", *json_flag)
            self.cli("incidents", "list", *json_flag)
        self.cli("plans", "validate", str(self.plans))
        self.cli("recover", "a", "--dry-run", ok=(0, 1))
        self.cli("recover", "r", "--dry-run", ok=(0, 1))
        for incident in json.loads(self.cli("incidents", "list", "--json")):
            self.cli("incidents", "show", str(incident["id"]))
            self.cli("incidents", "show", str(incident["id"]), "--json")
        for fmt in ("html", "json", "markdown", "csv"):
            out = tmp_path / f"report-{label}.{fmt}"
            self.cli("report", "--format", fmt, "-o", str(out))
            self.texts[f"report {fmt}"] = out.read_text()
        self.texts[f"in-process log {label}"] = "\n".join(self.log)


def _dump(db_url: str) -> dict[str, str]:
    """Every table as text; the components table split into definition columns and the rest."""
    database = Database(db_url)
    out: dict[str, str] = {}
    with database.engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).mappings().all()
            for row in rows:
                for column, value in row.items():
                    where = "definition" if table == "components" and column in DEFINITION_COLUMNS else "other"
                    out[f"{table}.{column} ({where})"] = out.get(f"{table}.{column} ({where})", "") + f"{value!r}\n"
    database.dispose()
    return out


def _leaks(texts: dict[str, str], markers: list[str]) -> list[str]:
    return [f"{marker} in {where}" for where, text in texts.items() for marker in markers if marker in text]


def _daemon(db_url: str, plans: Path, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, **REF_ENV, "ORCHESTRATOR_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "--db", db_url, "--plans", str(plans), "run",
                             "--log-level", "debug"], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


class _ListHandler(logging.Handler):
    """Keeps the final (filtered) log lines of the in-process commands."""

    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(self.format(record))


def test_no_secret_leaves_the_process(db_url: str, tmp_path: Path, endpoint: Endpoint,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REF_ENV.items():
        monkeypatch.setenv(name, value)  # the CLI's own checks (`check r`) resolve them too
    captured: list[str] = []
    handler = _ListHandler(captured)
    logs.install_filter(handler)  # as main() does for the handlers of every command
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        _run_everything(db_url, tmp_path, endpoint, captured)
    finally:
        root.removeHandler(handler)


def _run_everything(db_url: str, tmp_path: Path, endpoint: Endpoint, captured: list[str]) -> None:
    script = _restart_stub(tmp_path)
    plans = _plans(tmp_path, endpoint.port, script)
    components = _components(tmp_path, endpoint.port)
    out = Outputs(db_url, plans, captured)
    out.cli("apply", "-f", str(components))
    out.cli("component", "update", "a", "--secret-var", f"dbconn={SECRET_VAR}", "--var", f"admin_token={ADMIN_TOKEN}")
    out.cli("component", "add", "c", "--url", f"http://cuser:{URL_PW}@127.0.0.1:{endpoint.port}/c",
            "--secret-var", f"key={SECRET_VAR}", "--backup-url", f"http://x:{BACKUP_PW}@127.0.0.1:1/")
    out.cli("component", "update", "c", "--secret-var", f"key2={SECRET_VAR}x")
    out.cli("component", "remove", "c")
    changed = _components(tmp_path, endpoint.port, variant="2")

    daemon = _daemon(db_url, plans, tmp_path / "home")
    try:
        def up(name: str) -> bool:
            views = json.loads(out.cli("component", "list", "--json"))
            return any(v["name"] == name and v["state"] == "up" for v in views)

        poll(lambda: up("a") and up("r"), 60, 0.2)
        assert endpoint.authorised.get("/r"), "r's ${env:...} credentials were resolved for the check"
        endpoint.broken = True

        def resolved() -> bool:
            listed = json.loads(out.cli("incidents", "list", "--json"))
            return any(i["component"] == "a" and i["status"] == "resolved" for i in listed)

        poll(resolved, 60, 0.2)
        poll(lambda: any("resolved" in b for b in endpoint.bodies) and len(endpoint.bodies) >= 2, 30, 0.2)
        out.every_command(tmp_path, changed, "daemon running")
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, daemon_log = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, daemon_log

    # The commands got the real values, the webhook the redacted ones.
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[:2] == ["a", f"http://auser:{URL_PW}@127.0.0.1:{endpoint.port}/a"]
    assert ADMIN_TOKEN in argv and SECRET_VAR in argv
    step_body = next(b for b in endpoint.bodies if "down at" in b)
    assert "auser:***@" in step_body and "token ***" in step_body
    shown = json.loads(out.cli("incidents", "show", "1", "--json"))
    restart = next(r for r in shown["journal"] if r["strategy"] == "restart")
    assert restart["status"] == "succeeded" and "--password ***" in restart["output"]

    out.every_command(tmp_path, changed, "after")
    texts = {**out.texts, "daemon log": daemon_log, **{f"webhook body {i}": b for i, b in enumerate(endpoint.bodies)}}
    assert "incident" in daemon_log and "restart" in daemon_log  # the log really says what happened
    dump = _dump(db_url)
    assert any(URL_PW in text for where, text in dump.items() if "(definition)" in where), "a's secrets are stored"
    leaks = _leaks(texts, STORED + NEVER)
    leaks += _leaks({k: v for k, v in dump.items() if "(definition)" not in k}, STORED + NEVER)
    leaks += _leaks(dump, NEVER)  # references: not even the definition columns hold these
    assert leaks == [], "\n".join(leaks)
