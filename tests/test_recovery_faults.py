"""Recovery under ordinary faults, with real daemons, real commands and real databases.

Three rounds of each (bench/recovery_faults.py runs twenty): the daemon killed with SIGKILL at
different moments of a recovery and started again at once; SQLite refusing every write while a
step's command ends; PostgreSQL cut off (a TCP proxy) in the middle of a step. Afterwards every
incident is resolved or escalated, no attempt ran twice, nothing acted on a healthy service, the
journal and the commands' own log agree, and nothing is left ``running``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import event, select

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from orchestrator.db.models import JournalEntry
from tests.daemon_helpers import poll, running_daemon, scalar
from tests.fault_rig import (
    KILL_MOMENTS,
    RepairableServer,
    Stub,
    break_and_kill,
    break_during_outage,
    history,
    incidents,
    plan_file,
    problems,
    settled,
    start_daemon,
    up,
)
from tests.tcp_proxy import TcpProxy

ROUNDS = 3
#: checked every 200 ms, DOWN after two failures, UP after one success
FAST = {"interval": 0.2, "timeout": 0.1, "failure_threshold": 2, "success_threshold": 1}
#: seconds one round may take to settle (detection, a takeover, verification)
SETTLE_S = 40.0


def register(db: Database, url: str, **fields) -> None:
    """Register ``svc`` (checked FAST unless ``fields`` say otherwise) with plan ``p``."""
    Registry(db, plan_names={"p"}).add(ComponentSpec(name="svc", url=url, plan="p", **{**FAST, **fields}))


def rig(tmp_path: Path, **plan) -> tuple[Path, Stub, Path]:
    """The service's health flag (healthy), the restart stub, and plan ``p`` running it (``plan``:
    plan_file's settings)."""
    flag = tmp_path / "healthy"
    flag.touch()
    stub = Stub(tmp_path, flag)
    return flag, stub, plan_file(tmp_path, stub, **plan)


def test_daemon_killed_mid_recovery_and_restarted_settles_everything_exactly_once(db, db_url, tmp_path) -> None:
    """Killed while the command runs (and outlives its owner), while verifying, and just after the
    incident opened; started again at once, before the dead one's lease could expire."""
    flag, stub, plans = rig(tmp_path)
    with RepairableServer(flag) as server:
        register(db, server.url)
        daemon = start_daemon(db_url, plans, tmp_path)
        try:
            for moment, sleep_s in KILL_MOMENTS[:ROUNDS]:
                break_and_kill(db, server, stub, daemon, moment, sleep_s)
                daemon = start_daemon(db_url, plans, tmp_path)
                poll(lambda: settled(db) and server.healthy(), SETTLE_S)
            assert problems(db, stub) == []
            assert scalar(db, "SELECT count(*) FROM incidents WHERE resolution = 'auto'") == ROUNDS, history(db, stub)
        finally:
            daemon.kill()
            daemon.wait(10)


class ReadOnly:
    """Makes SQLite refuse every write of ``db`` (PRAGMA query_only on each checkout) while on."""

    def __init__(self, db: Database) -> None:
        self.on, self.refused = False, 0
        event.listen(db.engine, "checkout", self._checkout)
        event.listen(db.engine, "handle_error", self._error)

    def _checkout(self, dbapi_conn, _record, _proxy) -> None:
        dbapi_conn.execute(f"PRAGMA query_only = {int(self.on)}")

    def _error(self, context) -> None:
        if "readonly" in str(context.original_exception):
            self.refused += 1


def _fault_rounds(db: Database, server: RepairableServer, stub: Stub, tmp_path: Path, cut, heal) -> None:
    """Each round: the service breaks, its restart runs; while the command runs the database goes;
    the command ends (its result cannot be written); the database comes back; all must settle.
    The daemon lived on: nothing says its owner died (regression, issue 14 defect 8: "verified after
    its owner died" when the owner only lost its database)."""
    for round_no in range(ROUNDS):
        break_during_outage(db, server, stub, tmp_path / f"gate-{round_no}", cut, heal)
        poll(lambda: settled(db) and up(db), SETTLE_S)
    assert problems(db, stub) == []
    with db.read() as session:
        said = [r.detail or "" for r in session.scalars(select(JournalEntry))]
    said += [i.status_reason or "" for i in incidents(db)]
    assert not [line for line in said if "owner died" in line], history(db, stub)
    assert scalar(db, "SELECT count(*) FROM incidents WHERE resolution = 'auto'") == ROUNDS, history(db, stub)


def test_sqlite_write_errors_during_journal_writes_leave_nothing_stuck(tmp_path) -> None:
    """Regression: a write error inside a run (SQLite full while the journal row is finished) left the
    row ``running`` and the incident ``recovering`` until a restart; the next failure got no action."""
    url = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    db = Database(url)
    ensure_schema(db)
    flag, stub, plans = rig(tmp_path)
    with RepairableServer(flag) as server:
        register(db, server.url)
        with running_daemon(url, plans_path=plans) as daemon:
            fault = ReadOnly(daemon.db)

            def cut() -> None:
                fault.on = True
                daemon.db.engine.pool.dispose()  # idle connections too: every checkout sees the pragma

            def heal() -> None:
                poll(lambda: fault.refused > 0, 10)  # a write really was refused
                fault.on = False

            _fault_rounds(db, server, stub, tmp_path, cut, heal)
    db.dispose()


@pytest.mark.pg
def test_postgresql_cut_in_the_middle_of_a_step_leaves_nothing_stuck(pg_schema_url: str, tmp_path) -> None:
    """Regression: PostgreSQL stopped during a restart step left the incident ``recovering`` for good."""
    parts = urlsplit(pg_schema_url)
    proxy = TcpProxy(parts.hostname, parts.port or 5432)
    proxied = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port or 5432}", f":{proxy.port}")))
    db = Database(pg_schema_url)  # the test itself reads around the proxy
    ensure_schema(db)
    flag, stub, plans = rig(tmp_path)
    try:
        with RepairableServer(flag) as server:
            register(db, server.url)
            with running_daemon(proxied, plans_path=plans):
                _fault_rounds(db, server, stub, tmp_path, proxy.cut, proxy.restore)
    finally:
        proxy.cut()
        db.dispose()
