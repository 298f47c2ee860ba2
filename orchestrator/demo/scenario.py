"""`orchestrator demo`: start three loopback services, watch them, crash one, show the verified recovery.

Everything lives in ``<state dir>/demo`` with its own SQLite database, so the demo never touches the
operator's registry. The daemon is the real one, with the real restart strategy, a loopback webhook
that prints the notifications it receives, and the status page on a free loopback port: its URL is
printed before the crash, so the break and the recovery can be watched as they happen.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from orchestrator.accounts import service as accounts
from orchestrator.accounts.roles import Role
from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.daemon import Daemon, DaemonSettings
from orchestrator.db.audit import Actor
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from orchestrator.demo import service
from orchestrator.incidents.operator import show_incident
from orchestrator.plans import load_plans
from orchestrator.web.state import WebSettings

SERVICES = ("demo-api", "demo-db", "demo-worker")
#: the demo gives up on any stage after this long (it normally takes a few seconds)
STAGE_TIMEOUT_S = 60.0


class _Webhook(BaseHTTPRequestHandler):
    say: Callable[[str], None] = print

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        type(self).say(f"notification received: {body.get('title', '')}")
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _wait(what: str, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + STAGE_TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"demo: timed out waiting for {what}")
        time.sleep(0.1)


def run_demo(home: Path, say: Callable[[str], None], *, keep_running: bool = False, before_crash_s: float = 0.0,
             linger_s: float = 0.0) -> int:
    """The whole scenario; ``before_crash_s`` gives time to open the page, ``linger_s`` keeps it up after."""
    directory = home / "demo"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    _Webhook.say = say
    webhook = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    plan_text = resources.files("orchestrator.demo").joinpath("plans.json").read_text()
    plans_path = directory / "plans.json"
    plans_path.write_text(plan_text.replace("{notify_port}", str(webhook.server_address[1])))
    db_url = f"sqlite:///{directory / 'demo.db'}"
    say(f"state and database in {directory}")
    try:
        return _scenario(directory, db_url, plans_path, say, keep_running, before_crash_s, linger_s)
    finally:
        for name in SERVICES:
            service.stop(directory, name)
        webhook.shutdown()


def _scenario(directory: Path, db_url: str, plans_path: Path, say, keep_running: bool, before_crash_s: float,
              linger_s: float) -> int:
    script = service.write_restart_script(directory)
    for name in SERVICES:
        service.start(directory, name, service.free_port())
    db = Database(db_url)
    ensure_schema(db)
    registry = Registry(db, plan_names=set(load_plans(plans_path).plans))
    for name in SERVICES:
        port = (directory / f"{name}.port").read_text()
        registry.add(ComponentSpec(name=name, url=f"http://127.0.0.1:{port}/health", interval="1s",
                                   timeout="500ms", failure_threshold=2, plan="process",
                                   vars={"restart_script": str(script)}))
    say(f"started and registered {', '.join(SERVICES)} (check every 1s, plan 'process')")
    password = secrets.token_urlsafe(12)
    accounts.add_user(db, "demo", Role.OPERATOR, password, actor=Actor())  # the demo's own throwaway database
    daemon = Daemon(DaemonSettings(db_url=db_url, plans_path=plans_path, workers=8, http="127.0.0.1:0",
                                   web=WebSettings(refresh_s=1.0)))
    thread = threading.Thread(target=daemon.run, name="daemon", daemon=True)
    thread.start()
    try:
        _wait("the status page", lambda: daemon.web is not None or not thread.is_alive())
        if daemon.web is not None:
            say(f"status page: {daemon.web.url}  (open it now to watch; for its buttons log in as demo, "
                f"password {password})")
        _wait("all services UP", lambda: _states(db) == {"up"})
        if before_crash_s > 0:
            say(f"crashing one in {before_crash_s:g}s")
            time.sleep(before_crash_s)
        victim = SERVICES[0]
        pid = int((directory / f"{victim}.pid").read_text())
        say(f"all UP. Crashing {victim} (SIGKILL pid {pid})")
        crashed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        _wait("the incident to open", lambda: _incident(db) is not None)
        _wait("the verified recovery", lambda: (_incident(db) or {}).get("status") == "resolved")
        incident, took_s = _incident(db), time.monotonic() - crashed_at
        # The executor's own verification closed the incident; the regular checks confirm it next.
        _wait(f"{victim} UP again in its own checks", lambda: _states(db) == {"up"})
        say(f"incident {incident['id']} resolved ({incident['resolution']}) {took_s:.1f}s after the crash")
        for step in show_incident(db, incident["id"])["journal"]:
            say(f"  step {step['step_index']} attempt {step['attempt']}: {step['strategy']} -> {step['status']}"
                f" ({step.get('detail') or ''})")
        say(f"explore: orchestrator --db {db_url} incidents show {incident['id']}")
        if daemon.web is not None:
            say(f"the incident's timeline: {daemon.web.url}incidents/{incident['id']}")
        if linger_s > 0 and not keep_running:
            say(f"the page stays up {linger_s:g}s more")
            time.sleep(linger_s)
        if keep_running:
            say("daemon keeps running; Ctrl-C to stop")
            while thread.is_alive():
                thread.join(1)
        return 0
    finally:
        daemon.request_stop()
        thread.join(30)
        db.dispose()


def _states(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return {row[0] for row in conn.exec_driver_sql("SELECT state FROM components")}


def _incident(db: Database) -> dict | None:
    with db.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT id, status, resolution FROM incidents ORDER BY id DESC LIMIT 1").first()
    return None if row is None else {"id": row[0], "status": row[1], "resolution": row[2]}
