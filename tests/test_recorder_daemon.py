"""A real daemon: removing a DOWN component never stops the writes of the others (issue 14, defect 1).

Before: the removed component's per-minute rollup stayed pending; when its minute closed, the foreign
key refused every later batch, so a crash of another component got no transition and no incident, and
the stop line said dropped=0. The daemon runs on the real clock and is started when at least
``MIN_BEFORE_CLOSE_S`` are left of the current minute (waiting for the next minute otherwise), so the
minute of downone's last results closes while the daemon runs. (It ran under libfaketime before, and its
sleeps failed with EINVAL at stop now and then, in about one whole run of the suite in three.)"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from orchestrator.demo.service import free_port
from tests.daemon_helpers import poll, scalar, spawn
from tests.servers import LoopbackHTTPServer

#: the least time left of a minute when the daemon starts: downone goes DOWN (~1 s) and is removed before
#: the minute closes, even on a loaded machine
MIN_BEFORE_CLOSE_S = 15


def _minute_closing_soon() -> float:
    """The wall time (``time.time()``) at which the current minute closes, once at least
    ``MIN_BEFORE_CLOSE_S`` of it are left (polling the clock into the next minute when fewer are)."""
    poll(lambda: 60 - time.time() % 60 >= MIN_BEFORE_CLOSE_S, timeout_s=MIN_BEFORE_CLOSE_S + 5)
    now = time.time()
    return now - now % 60 + 60


@pytest.mark.slow
def test_removing_a_down_component_keeps_every_later_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    db = Database(url)
    ensure_schema(db)
    server = LoopbackHTTPServer("ok")
    registry = Registry(db)
    registry.add(ComponentSpec(name="keep", url=server.url, interval=1.0, timeout=0.5))
    registry.add(ComponentSpec(name="downone", url=f"http://127.0.0.1:{free_port()}/health", interval=1.0,
                               timeout=0.5))
    closes_at = _minute_closing_soon()
    daemon = spawn(["--db", url, "run"], tmp_path)
    try:
        poll(lambda: scalar(db, "SELECT count(*) FROM state_transitions t JOIN components c ON c.id = t.component_id "
                                "WHERE c.name = 'downone' AND t.to_state = 'down'"), timeout_s=60)
        registry.remove("downone")
        keep_results = scalar(db, "SELECT count(*) FROM check_results")
        poll(lambda: scalar(db, "SELECT count(*) FROM check_results") >= keep_results + 3, timeout_s=30)
        assert time.time() < closes_at, "downone was removed after its minute closed: the case was not made"
        # the minute of downone's last results closes at closes_at; keep's results go on being written after it
        poll(lambda: time.time() > closes_at + 1, timeout_s=70)
        after_close = scalar(db, "SELECT count(*) FROM check_results")
        poll(lambda: scalar(db, "SELECT count(*) FROM check_results") >= after_close + 5, timeout_s=30)
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
