"""Helpers to run the real daemon in-process (a thread) or as a subprocess, and to poll the database."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from orchestrator.daemon import Daemon, DaemonSettings
from orchestrator.db.engine import Database


def poll(predicate: Callable[[], object], timeout_s: float = 10.0, interval_s: float = 0.05) -> object:
    """Return the first truthy value of ``predicate`` within ``timeout_s``; fail the test otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)


def scalar(db: Database, sql: str, **params: object) -> object:
    with db.engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


@contextmanager
def running_daemon(db_url: str, **settings: object) -> Iterator[Daemon]:
    """The real daemon in a thread (no signal handlers there); stopped and joined on exit."""
    daemon = Daemon(DaemonSettings(db_url=db_url, **settings))
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    poll(lambda: daemon.plane is not None and daemon.recorder is not None, 20)
    try:
        yield daemon
    finally:
        daemon.request_stop()
        thread.join(30)
        assert result == [0], "daemon did not stop cleanly"


def spawn(args: list[str], home: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``orchestrator ARGS`` as a real process, output captured."""
    full_env = {**os.environ, "ORCHESTRATOR_HOME": str(home), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def recording_stub(folder: Path) -> tuple[Path, Path]:
    """A restart command (stub executable) that appends its argv to a log, one line per run, and
    repairs nothing; returns (its path, the log's path)."""
    log = folder / "restarts.log"
    stub = folder / "restart-stub"
    stub.write_text(f"#!{sys.executable}\nimport sys\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n")
    stub.chmod(0o755)
    return stub, log
