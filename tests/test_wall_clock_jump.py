"""A real daemon under libfaketime: a wall-clock step of ±1 h changes the timestamps written, nothing else
(invariant 7; issue 14, defect 6: after -1 h no check result and no heartbeat for minutes)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from tests.daemon_helpers import poll, scalar, spawn
from tests.servers import LoopbackHTTPServer

#: Debian's package `faketime` (.ci/run installs it)
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


def faketime_env(offset_file: Path, start: str = "+0") -> dict[str, str]:
    """Wall time = real time + the offset written in ``offset_file`` (re-read at every call, so the test
    can step it); the monotonic clock stays real. Offsets stay ≤ 0: with a positive one, libfaketime
    0.9.10 breaks Python 3.11's time.sleep (clock_nanosleep TIMER_ABSTIME, EINVAL; wolfcw/libfaketime#426)."""
    if not LIBFAKETIME.exists():
        pytest.skip("libfaketime is not installed (Debian package faketime)")
    offset_file.write_text(f"{start}\n")
    return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(offset_file), "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def test_checks_and_heartbeats_go_on_through_wall_clock_steps(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    db = Database(url)
    ensure_schema(db)
    offset = tmp_path / "faketime"
    env = faketime_env(offset)
    with LoopbackHTTPServer("ok") as server:
        Registry(db).add(ComponentSpec(name="svc", url=server.url, interval=1.0, timeout=0.5))
        daemon = spawn(["--db", url, "run"], tmp_path, env)
        try:
            results = lambda: scalar(db, "SELECT count(*) FROM check_results")  # noqa: E731
            heartbeat = lambda: scalar(db, "SELECT max(heartbeat_at) FROM daemon_instances")  # noqa: E731
            poll(lambda: results() >= 3, timeout_s=60)
            for step in ("-1h", "+0"):  # an hour back, then an hour forward (set right)
                before_results, before_beat = results(), heartbeat()
                offset.write_text(f"{step}\n")
                poll(lambda: results() >= before_results + 5, timeout_s=30)  # noqa: B023
                poll(lambda: heartbeat() != before_beat, timeout_s=30)  # noqa: B023
            latest = scalar(db, "SELECT max(checked_at) FROM check_results")
            first = scalar(db, "SELECT min(checked_at) FROM check_results")
            assert str(latest) > str(first)  # the timestamps moved with the wall clock
            assert daemon.poll() is None
        finally:
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(30) == 0
    db.dispose()
