"""The soak's rig (tests/soak.py), also used by tests/test_detection_defaults.py: the restart stub and
its other end in the test process, the plan file made from the shipped one, process helpers.

- :class:`RestartControl` serves ``/state`` and ``/repair`` on loopback; :meth:`RestartControl.write_stub`
  writes the restart command, which logs its argv and whether the service answered (its own log, one
  JSON line at its start and one at its end), asks for the service to be brought back (what a real
  restart does) and exits 0.
- :func:`soak_plans`: recovery_strategies.json as shipped, notifications to a loopback webhook.
"""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parent.parent
SHIPPED_PLANS = REPO / "recovery_strategies.json"
#: The soak's restart step timeout (shipped: 30 s), shorter than a long SIGSTOP so that a step can end
#: while its daemon is stopped.
STEP_TIMEOUT = "6s"


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_STUB = '''#!{python} -S
"""Restart stub: log argv and whether the service answered, have it brought back, log the end."""
import json, os, sys, time, urllib.request
name, incident, attempt = (sys.argv[1:] + ["", "", ""])[:3]
def log(**fields):
    with open({log!r}, "a") as out:
        out.write(json.dumps(dict(name=name, incident=incident, attempt=attempt, pid=os.getpid(), t=time.time(),
                                  argv=sys.argv[1:], **fields)) + "\\n")
def ask(what):
    with urllib.request.urlopen("http://127.0.0.1:{port}/" + what + "?name=" + name, timeout=10) as r:
        return json.load(r)
state = ask("state")
log(event="start", healthy_before=state["healthy"], fault=state["fault"], hand_fix_race=state["race"])
time.sleep(state["sleep_s"])
done = ask("repair")
log(event="end", exit=0 if done["ok"] else 1)
sys.exit(0 if done["ok"] else 1)
'''



class RestartControl:
    """The other end of the restart stub: a loopback HTTP server in the test process.

    ``GET /state?name=N`` answers ``state(N)`` (a dict: ``healthy``, ``fault``, ``race``, ``sleep_s``);
    ``GET /repair?name=N`` calls ``repair(N)`` (bring the service back; True if it exists)."""

    def __init__(self, state, repair) -> None:
        control = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                name = parse_qs(url.query).get("name", [""])[0]
                body = control.state(name) if url.path == "/state" else {"ok": bool(control.repair(name))}
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.state, self.repair = state, repair
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True).start()

    def write_stub(self, path: Path, log: Path) -> Path:
        """The restart command (mode 0755): ``stub NAME [INCIDENT ATTEMPT]``, logging to ``log``."""
        path.write_text(_STUB.format(python=sys.executable, log=str(log), port=self.port))
        path.chmod(0o755)
        return path

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def soak_plans(stub: Path | None, hook_url: str, attempts: int | None = None) -> dict:
    """The shipped recovery_strategies.json with every notification going to a loopback webhook (never
    out of the machine); with ``stub``, its ``process`` restart runs ``stub NAME INCIDENT ATTEMPT``
    with a STEP_TIMEOUT."""
    plans = json.loads(SHIPPED_PLANS.read_text())
    plans["notifications"]["urls"] = []
    plans["notifications"]["webhooks"] = [{"url": hook_url}]
    process = plans["plans"]["process"]
    if stub is not None:
        process["steps"][0]["params"]["command"] = [str(stub), "{component.name}", "{incident.id}", "{attempt}"]
        # the stub takes at most 3 s; a SIGSTOP of the daemon (3-10 s) may outlast this timeout
        process["steps"][0]["timeout"] = STEP_TIMEOUT
    if attempts is not None:
        process["steps"][0]["attempts"] = attempts
    for plan in plans["plans"].values():
        for step in plan["steps"]:
            if step["strategy"] == "notify":
                step["params"] = {"webhooks": [{"url": hook_url}],
                                  **({"message": step["params"]["message"]} if "message" in step["params"] else {})}
    return plans
