"""A tiny HTTP service for the demo, and the restart script's logic.

``python -m orchestrator.demo.service serve PORT`` answers ``GET /health`` with ``{"status": "UP"}``.
``python -m orchestrator.demo.service restart DIR NAME`` kills the service recorded in ``DIR/NAME.pid``
(if alive) and starts it again on the port in ``DIR/NAME.port``, returning once it answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

START_TIMEOUT_S = 10.0


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"status": "UP", "pid": os.getpid()}).encode()
        self.send_response(200 if self.path.startswith("/health") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(port: int) -> None:
    ThreadingHTTPServer(("127.0.0.1", port), _Health).serve_forever()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(directory: Path, name: str, port: int | None = None) -> int:
    """Start ``name`` detached (its own session), record pid and port; return the pid once it answers."""
    port = port or int((directory / f"{name}.port").read_text())
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.demo.service", "serve", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    (directory / f"{name}.pid").write_text(str(proc.pid))
    (directory / f"{name}.port").write_text(str(port))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return proc.pid
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not start on port {port}")


def stop(directory: Path, name: str) -> None:
    pidfile = directory / f"{name}.pid"
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def restart(directory: Path, name: str) -> int:
    stop(directory, name)
    pid = start(directory, name)
    print(f"restarted {name}: pid {pid}")
    return 0


def write_restart_script(directory: Path) -> Path:
    """An executable the plan's restart step runs with the component's name as its argument."""
    script = directory / "restart-service"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom pathlib import Path\n"
                      "from orchestrator.demo.service import restart\n"
                      f"sys.exit(restart(Path({str(directory)!r}), sys.argv[1]))\n")
    script.chmod(0o755)
    return script


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    elif sys.argv[1] == "restart":
        sys.exit(restart(Path(sys.argv[2]), sys.argv[3]))
