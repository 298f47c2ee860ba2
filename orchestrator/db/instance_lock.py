"""One daemon per database, until instances share work through leases.

SQLite: an exclusive lock on ``<db>.lock``. PostgreSQL: a session-level advisory lock held on a
dedicated connection, keyed on the schema the tables live in (advisory locks are database-wide, and
two orchestrators in two schemas of one database are as separate as two databases). Both are released by the operating system or the server when the process dies
(even on SIGKILL), so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from sqlalchemy import Connection, text

from orchestrator.core.errors import InstanceLockedError
from orchestrator.db.engine import Database, safe_url

#: the advisory lock key of "the orchestrator daemon" in a PostgreSQL database
_PG_DAEMON_LOCK = 0x0C4E58
#: one lock per schema: daemons of different schemas of one database are different deployments
_TRY_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(current_schema(), :k))")
#: seconds a starting daemon waits for the lock of one that just died (its session may not be gone yet)
PG_LOCK_WAIT_S = 5.0


class FileLock:
    def __init__(self, db_path: str) -> None:
        self.path = Path(f"{db_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise InstanceLockedError(
                f"another orchestrator (pid {holder}) is already running against {self.path.with_suffix('')}; "
                "SQLite is single-instance") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class PgAdvisoryLock:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None

    def acquire(self) -> None:
        conn = self.db.engine.connect()
        # A daemon killed a moment ago holds the lock until the server notices its session ended:
        # a restart right after a crash waits for that instead of refusing to start.
        deadline = time.monotonic() + PG_LOCK_WAIT_S
        while not (got := conn.execute(_TRY_LOCK, {"k": _PG_DAEMON_LOCK}).scalar()):
            conn.commit()
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        conn.commit()
        if not got:
            conn.close()
            raise InstanceLockedError(f"another orchestrator is already running against {safe_url(self.db.url)}; "
                                      "one daemon per database")
        self._conn = conn

    def release(self) -> None:
        if self._conn is not None:
            self._conn.invalidate()  # drop the session, and with it the lock
            self._conn.close()
            self._conn = None


def instance_lock(db: Database) -> FileLock | PgAdvisoryLock:
    return FileLock(db.engine.url.database) if db.is_sqlite else PgAdvisoryLock(db)
