"""A real daemon: removing a DOWN component never stops the writes of the others (issue 14, defect 1).

Before: the removed component's per-minute rollup stayed pending; when its minute closed, the foreign
key refused every later batch, so a crash of another component got no transition and no incident, and
the stop line said dropped=0. libfaketime steps the wall clock a minute forward to close that minute
(from -60 s to the real time: see faketime_env)."""

from __future__ import annotations

import signal
from pathlib import Path

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from orchestrator.demo.service import free_port
from tests.daemon_helpers import poll, scalar, spawn
from tests.servers import LoopbackHTTPServer
from tests.test_wall_clock_jump import faketime_env


def test_removing_a_down_component_keeps_every_later_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    db = Database(url)
    ensure_schema(db)
    offset = tmp_path / "faketime"
    env = faketime_env(offset, start="-60")
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
        offset.write_text("+0\n")  # a minute forward: the minute of downone's last results closes
        poll(lambda: scalar(db, "SELECT count(*) FROM check_results") >= keep_results + 6, timeout_s=30)
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
