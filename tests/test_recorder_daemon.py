"""A real daemon: removing a DOWN component never stops the writes of the others (issue 14, defect 1).

Before: the removed component's per-minute rollup stayed pending; when its minute closed, the foreign
key refused every later batch, so a crash of another component got no transition and no incident, and
the stop line said dropped=0. libfaketime sets the daemon's wall clock so that a minute closes
``MINUTE_CLOSES_AFTER_S`` after it starts: a fixed negative offset, never changed while it runs (a
changed offset can make libfaketime 0.9.10 break Python's time.sleep with EINVAL: see faketime_env)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from orchestrator.demo.service import free_port
from tests.daemon_helpers import poll, scalar, spawn
from tests.servers import LoopbackHTTPServer
from tests.test_wall_clock_jump import faketime_env

#: seconds from the daemon's start until its (faked) wall clock crosses a minute: long enough for
#: downone to go DOWN and be removed on a loaded machine, short enough for the suite
MINUTE_CLOSES_AFTER_S = 25


def _offset_to_close_a_minute(after_s: float) -> str:
    """A libfaketime offset (≤ 0 s, whole seconds) putting the wall clock about ``after_s`` before the
    next minute. Whole seconds: with a fractional offset libfaketime 0.9.10 can hand clock_nanosleep a
    timespec whose nanoseconds are out of range, and the daemon's sleep fails with EINVAL."""
    import time

    into_minute = time.time() % 60
    return f"{round(((60 - after_s) - into_minute) % 60 - 60):+d}"


@pytest.mark.slow
def test_removing_a_down_component_keeps_every_later_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    db = Database(url)
    ensure_schema(db)
    offset = tmp_path / "faketime"
    env = faketime_env(offset, start=_offset_to_close_a_minute(MINUTE_CLOSES_AFTER_S))
    server = LoopbackHTTPServer("ok")
    registry = Registry(db)
    registry.add(ComponentSpec(name="keep", url=server.url, interval=1.0, timeout=0.5))
    registry.add(ComponentSpec(name="downone", url=f"http://127.0.0.1:{free_port()}/health", interval=1.0,
                               timeout=0.5))
    daemon = spawn(["--db", url, "run"], tmp_path, env)
    try:
        poll(lambda: scalar(db, "SELECT count(*) FROM state_transitions t JOIN components c ON c.id = t.component_id "
                                "WHERE c.name = 'downone' AND t.to_state = 'down'"), timeout_s=60)
        registry.remove("downone")
        keep_results = scalar(db, "SELECT count(*) FROM check_results")
        poll(lambda: scalar(db, "SELECT count(*) FROM check_results") >= keep_results + 3, timeout_s=30)
        # the minute of downone's last results closes MINUTE_CLOSES_AFTER_S after the start; keep's
        # results go on being written after it
        poll(lambda: scalar(db, "SELECT count(*) FROM check_results") >= keep_results + MINUTE_CLOSES_AFTER_S + 5,
             timeout_s=90)
        server.crash()
        poll(lambda: scalar(db, "SELECT count(*) FROM incidents i JOIN components c ON c.id = i.component_id "
                                "WHERE c.name = 'keep'"), timeout_s=60)
    finally:
        daemon.send_signal(signal.SIGTERM)
        err = daemon.communicate(timeout=30)[1]
        server.stop()
    assert daemon.returncode == 0, err[-2000:]
    stop_line = [line for line in err.splitlines() if "stopped instance=" in line]
    assert stop_line and "results_refused=0" in stop_line[0] and "results_at_stop=0" in stop_line[0]
    assert "database write failed" not in err
    db.dispose()
