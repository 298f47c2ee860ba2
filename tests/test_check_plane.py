"""The check plane in the real daemon: hanging endpoints do not starve healthy ones; a killed
check worker process is replaced and its components keep their checks."""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack

import sqlalchemy as sa

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from orchestrator.db.models import CheckResultRow, Component
from tests.daemon_helpers import poll, running_daemon
from tests.servers import LoopbackHTTPServer

INTERVAL_S = 0.5


def _servers(stack: ExitStack, n: int, mode: str = "ok") -> list[LoopbackHTTPServer]:
    return [stack.enter_context(LoopbackHTTPServer(mode)) for _ in range(n)]


def _register(db: Database, servers: list[LoopbackHTTPServer], prefix: str, **extra: object) -> None:
    registry = Registry(db)
    for i, server in enumerate(servers):
        registry.add(ComponentSpec(name=f"{prefix}{i}", url=server.url, **{"interval": INTERVAL_S, "timeout": 0.4,
                                                                            **extra}))


def _results(db: Database) -> dict[str, list]:
    with db.read() as session:
        rows = session.execute(sa.select(Component.name, CheckResultRow.checked_at, CheckResultRow.ok)
                               .join(Component, Component.id == CheckResultRow.component_id)
                               .order_by(CheckResultRow.checked_at)).all()
    out: dict[str, list] = {}
    for name, at, ok in rows:
        out.setdefault(name, []).append((at, ok))
    return out


def test_healthy_components_keep_their_cadence_while_others_hang(db: Database, db_url: str) -> None:
    """10 endpoints hang on every check for 1.5 s (never DOWN: a high threshold keeps them on retries
    every 0.4 s, the worst case), on a fast lane of 4 threads: without the slow lane they would hold
    every thread, and healthy checks would queue behind them for a second and more."""
    with ExitStack() as stack:
        healthy = _servers(stack, 20)
        hanging = _servers(stack, 10, "hang")
        _register(db, healthy, "ok")
        _register(db, hanging, "hang", interval=2.0, timeout=1.5, failure_threshold=100)
        with running_daemon(db_url, workers=4, check_processes=0):
            poll(lambda: all(s.hits >= 2 for s in hanging), timeout_s=15)  # they hang, over and over
            start, began = [s.hits for s in healthy], time.monotonic()
            poll(lambda: all(s.hits >= 5 for s in hanging), timeout_s=40)
            # Meanwhile each healthy component was checked at its interval (allowing for start-up of
            # the window and a loaded machine): without the slow lane they queue behind the hangs.
            intervals = (time.monotonic() - began) / INTERVAL_S
            done = [s.hits - before for s, before in zip(healthy, start, strict=True)]
            assert min(done) >= 0.5 * intervals - 1, (done, intervals)
    # ...and on time: a healthy check never waits behind a hanging one (half the hang's timeout: room
    # for a loaded machine; a healthy check queued behind hangs waits a whole one).
    with db.read() as session:
        late = sorted(session.scalars(sa.select(CheckResultRow.lateness_ms).join(Component).where(
            Component.name.like("ok%"), CheckResultRow.lateness_ms.is_not(None))))
    assert late[int(len(late) * 0.9)] < 750, late[-10:]
    results = _results(db)
    healthy_results = [ok for name, rows in results.items() if name.startswith("ok") for _, ok in rows]
    # none failed for the hangs' sake (a loaded machine may still time one out at 0.4 s)
    assert healthy_results.count(False) <= 0.05 * len(healthy_results)


def test_a_killed_check_worker_is_replaced_and_no_component_loses_its_checks(db: Database, db_url: str) -> None:
    with ExitStack() as stack:
        servers = _servers(stack, 12)
        _register(db, servers, "c")
        with running_daemon(db_url, check_processes=2) as daemon:
            lanes = daemon.plane.lanes
            poll(lambda: all(s.hits >= 3 for s in servers), timeout_s=20)
            victim = lanes.pids()[0]
            os.kill(victim, signal.SIGKILL)
            killed_at = sum(s.hits for s in servers)
            poll(lambda: lanes.restarts == 1 and victim not in lanes.pids(), timeout_s=5)
            after = [s.hits for s in servers]
            poll(lambda: all(s.hits >= n + 3 for s, n in zip(servers, after, strict=True)), timeout_s=20)
            assert sum(s.hits for s in servers) > killed_at
    with db.read() as session:
        # every request but those in flight on the killed worker (they reached the server, their results
        # died with it) has its row: at least 6 checks of each component
        assert session.scalar(sa.select(sa.func.count()).select_from(CheckResultRow)) >= 12 * 6 - 12
    for name, rows in _results(db).items():
        gaps = [(b[0] - a[0]).total_seconds() for a, b in zip(rows, rows[1:], strict=False)]
        # at most one interval lost to the kill: the restart is noticed within a tick (50 ms) and the
        # checks the dead worker held are dispatched again at once
        assert max(gaps) < 2 * INTERVAL_S + 1.0, (name, max(gaps))


def test_worker_processes_are_added_when_the_fleet_outgrows_one_process(db: Database, db_url: str) -> None:
    with LoopbackHTTPServer() as server:
        _register(db, [server], "c")
        with running_daemon(db_url) as daemon:  # the default: one component is checked in-process
            plane = daemon.plane
            assert plane.processes == 0
            poll(lambda: server.hits >= 2, timeout_s=10)
            plane.adapt(1000.0)  # what the sync does once the registry asks for 1,000 checks/s
            assert plane.processes >= 1 and plane.dispatcher.lanes is plane.lanes
            hits = server.hits
            poll(lambda: server.hits >= hits + 3, timeout_s=10)  # checked by the worker process now
            assert plane.lanes.pids()
