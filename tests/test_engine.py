"""Engine setup: SQLite pragmas and BEGIN IMMEDIATE under concurrent writers; unreachable databases."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from orchestrator.core.errors import DatabaseError, InputError
from orchestrator.db.engine import Database


def test_sqlite_pragmas(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    db.dispose()


def test_sqlite_concurrent_read_modify_write_loses_nothing(tmp_path) -> None:
    """8 threads x 100 read-then-write transactions: with BEGIN IMMEDIATE none fails as 'locked'."""
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.write_conn() as conn:
        conn.exec_driver_sql("CREATE TABLE counter (n INTEGER)")
        conn.exec_driver_sql("INSERT INTO counter VALUES (0)")
    errors: list[Exception] = []

    def work() -> None:
        for _ in range(100):
            try:
                with db.write_conn() as conn:
                    n = conn.exec_driver_sql("SELECT n FROM counter").scalar()
                    conn.execute(sa.text("UPDATE counter SET n = :n"), {"n": n + 1})
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT n FROM counter").scalar() == 800
    assert errors == []
    db.dispose()


def test_unreachable_postgres_is_one_clear_error() -> None:
    db = Database("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(DatabaseError) as info:
        db.check_reachable()
    assert "cannot reach database" in str(info.value)
    assert "secret" not in str(info.value)


def test_unsupported_url_is_input_error() -> None:
    with pytest.raises(InputError, match="--db"):
        Database("mysql://x/y")
