"""The PostgreSQL daemon lock is per schema: one daemon per orchestrator, not per server database."""

from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy as sa

from orchestrator.core.errors import InstanceLockedError
from orchestrator.daemon import EXIT_LOCK_LOST
from orchestrator.db.engine import Database
from orchestrator.db.instance_lock import _PG_DAEMON_LOCK, VERIFY_INTERVAL_S, instance_lock
from tests.conftest import PG_URL, _pg_schema_url
from tests.daemon_helpers import poll, spawn


@pytest.mark.pg
def test_two_schemas_of_one_database_lock_separately(pg_schema_url: str) -> None:
    other = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{other}"')
    first, second, same = Database(pg_schema_url), Database(_pg_schema_url(other)), Database(pg_schema_url)
    locks = [instance_lock(first), instance_lock(second)]
    try:
        for lock in locks:
            lock.acquire()
        with pytest.raises(InstanceLockedError):
            instance_lock(same).acquire()
    finally:
        for lock in locks:
            lock.release()
        for db in (first, second, same):
            db.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{other}" CASCADE')
        admin.dispose()


# -- the lock is held, not assumed (issue 14, defect 7) ------------------------------------------------


def _lock_pids(admin: sa.Engine, schema: str) -> list[int]:
    """Backends holding the daemon lock of ``schema`` (the key the daemon derives from its schema)."""
    with admin.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND objid::bigint = (hashtextextended(:s, :k) & 4294967295) "
            "AND classid::bigint = ((hashtextextended(:s, :k) >> 32) & 4294967295)"),
            {"s": schema, "k": _PG_DAEMON_LOCK}).scalars())


def _terminate(admin: sa.Engine, pids: list[int]) -> None:
    with admin.connect() as conn:
        for pid in pids:
            conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        conn.commit()


@pytest.mark.pg
def test_a_lost_lock_is_retaken_or_the_daemon_exits_never_two_daemons(pg_schema: str, pg_admin: sa.Engine,
                                                                      tmp_path) -> None:
    """Before: after pg_terminate_backend of the lock's session a second daemon started and both ran."""
    url = _pg_schema_url(pg_schema)
    first = spawn(["--db", url, "run"], tmp_path)
    try:
        pid = poll(lambda: _lock_pids(pg_admin, pg_schema), timeout_s=60)[0]
        _terminate(pg_admin, [pid])
        # nobody else wanted it: the daemon takes its lock again on a new session and carries on
        poll(lambda: [p for p in _lock_pids(pg_admin, pg_schema) if p != pid], timeout_s=30)
        assert first.poll() is None
        # the session ends again and a second daemon starts at once: one of the two must stop
        _terminate(pg_admin, _lock_pids(pg_admin, pg_schema))
        second = spawn(["--db", url, "run"], tmp_path)
        try:
            poll(lambda: first.poll() is not None or second.poll() is not None, timeout_s=60)
            time.sleep(3 * VERIFY_INTERVAL_S)  # and it stays so: the survivor is alone
            alive = [p for p in (first, second) if p.poll() is None]
            assert len(alive) == 1
            stopped = first if second in alive else second
            # the first daemon lost its lock (exit 75, said in its log) or the second was refused (exit 1)
            assert (stopped is first and stopped.returncode == EXIT_LOCK_LOST) or \
                (stopped is second and stopped.returncode == 1), stopped.returncode
            if stopped is first:
                assert "instance lock lost" in first.communicate(timeout=10)[1]
        finally:
            _stop(second)
    finally:
        _stop(first)


@pytest.mark.pg
def test_a_daemon_whose_lock_was_taken_stops_without_writing(pg_schema: str, pg_admin: sa.Engine, tmp_path) -> None:
    url = _pg_schema_url(pg_schema)
    daemon = spawn(["--db", url, "run"], tmp_path)
    try:
        pid = poll(lambda: _lock_pids(pg_admin, pg_schema), timeout_s=60)[0]
        with pg_admin.connect() as thief:
            _terminate(pg_admin, [pid])
            key = sa.text("SELECT pg_try_advisory_lock(hashtextextended(:s, :k))")
            poll(lambda: thief.execute(key, {"s": pg_schema, "k": _PG_DAEMON_LOCK}).scalar(), timeout_s=30)
            thief.commit()
            assert daemon.wait(timeout=60) == EXIT_LOCK_LOST
            err = daemon.communicate(timeout=10)[1]
            assert "instance lock lost" in err and "another daemon holds the lock" in err
            thief.invalidate()
    finally:
        _stop(daemon)


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except Exception:
            proc.kill()
            proc.wait()


def test_sqlite_lock_file_removed_is_retaken_so_a_second_daemon_is_still_refused(tmp_path) -> None:
    """An flock cannot be lost while held, but its file can be deleted: a second daemon would then lock
    a new file beside the first. verify() notices and locks the new file first."""
    db = Database(f"sqlite:///{tmp_path / 'o.db'}")
    lock = instance_lock(db)
    lock.acquire()
    try:
        assert lock.verify() is True
        lock.path.unlink()
        assert lock.verify() is False  # re-taken on a new file
        with pytest.raises(InstanceLockedError):
            instance_lock(db).acquire()
    finally:
        lock.release()
        db.dispose()


def test_a_sqlite_daemon_whose_lock_file_was_taken_over_exits_75(tmp_path) -> None:
    """The lock file is deleted and another process locks a new one before the daemon looks again: the
    daemon stops without writing and exits 75 (before: both ran, each believing it was alone)."""
    import fcntl
    import os

    url = f"sqlite:///{tmp_path / 'o.db'}"
    daemon = spawn(["--db", url, "run"], tmp_path)
    lock_path = tmp_path / "o.db.lock"
    try:
        poll(lambda: lock_path.exists() and lock_path.read_text().strip() == str(daemon.pid), timeout_s=60)
        lock_path.unlink()
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the "second daemon" holds the new file
            assert daemon.wait(timeout=60) == EXIT_LOCK_LOST
            assert "instance lock lost" in daemon.communicate(timeout=10)[1]
        finally:
            os.close(fd)
    finally:
        _stop(daemon)


def test_healthz_and_readyz_say_the_lock_is_lost(tmp_path) -> None:
    from orchestrator.daemon import Daemon, DaemonSettings
    from orchestrator.web.app import create_app
    from orchestrator.web.source import DaemonSource
    from orchestrator.web.state import WebSettings

    daemon = Daemon(DaemonSettings(db_url=f"sqlite:///{tmp_path / 'o.db'}"))
    daemon.db = Database(daemon.settings.db_url)
    daemon.lock_lost = "the instance lock's session ended and another daemon holds the lock now"
    client = create_app(DaemonSource(daemon), WebSettings()).test_client()
    for url in ("/healthz", "/readyz"):
        answer = client.get(url)
        assert answer.status_code == 503
        [check] = answer.get_json()["checks"]["instance:lock"]
        assert check["status"] == "fail" and "another daemon holds the lock" in check["output"]
    daemon.db.dispose()
