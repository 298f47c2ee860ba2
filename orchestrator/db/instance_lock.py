"""One daemon per database, until instances share work through leases.

SQLite: an exclusive lock on ``<db>.lock``. PostgreSQL: a session-level advisory lock held on a
dedicated connection, keyed on the schema the tables live in (advisory locks are database-wide, and
two orchestrators in two schemas of one database are as separate as two databases). Both are released by the operating system or the server when the process dies
(even on SIGKILL), so a crash never leaves a stale lock behind.

The lock is held, not assumed: ``verify()`` (the daemon calls it every ``VERIFY_INTERVAL_S``) asks the
server whether this session still holds it. A PostgreSQL session ends without the process noticing
(a server restart, ``pg_terminate_backend``, a network cut): its lock is gone and a second daemon
may take it. ``verify()`` then tries to re-take it on a new session; when another daemon holds it, it
raises :class:`LockLostError` and the daemon stops acting and writing and exits non-zero for its
supervisor. While the database cannot be reached at all the lock cannot be confirmed either way
(:class:`LockUnconfirmed`): nothing can be written or claimed then anyway, so the daemon keeps its
buffer (invariant 4) and asks again every ``VERIFY_INTERVAL_S`` until the server answers.
An flock cannot be lost while its descriptor is open, but the lock *file* can be deleted or replaced,
after which a second daemon would lock a new file: ``verify()`` checks that the path still names the
locked file, and re-takes it otherwise.

Protects "one daemon acts per database" (issue 14's I7) and through it DESIGN.md invariant 1 (exactly
once): a lock that is gone must never be believed held. It must never break invariant 6 (never silent)
either: a daemon that stops acting because its lock is gone says so (log, /healthz, /readyz, exit 75).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from sqlalchemy import Connection, text

from orchestrator.core.errors import InstanceLockedError, LockLostError, LockUnconfirmed, first_line
from orchestrator.db.engine import Database, safe_url

#: the advisory lock key of "the orchestrator daemon" in a PostgreSQL database
_PG_DAEMON_LOCK = 0x0C4E58
#: one lock per schema: daemons of different schemas of one database are different deployments
_TRY_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(current_schema(), :k))")
#: seconds a starting daemon waits for the lock of one that just died (its session may not be gone yet)
PG_LOCK_WAIT_S = 5.0
#: how often a running daemon checks that it still holds its lock, seconds: one round trip on an idle
#: session, and the longest two daemons could act side by side after a lock was lost
VERIFY_INTERVAL_S = 2.0
#: whether this session holds the daemon lock of its schema
#: (the dedicated session takes no other advisory lock)
_HELD = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()")


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

    def verify(self) -> bool:
        """True while the path still names the locked file; re-takes it if the file was removed or
        replaced (then True, False when another daemon locked the new file first: raises LockLostError)."""
        assert self._fd is not None
        try:
            same = os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return True
        self.release()
        try:
            self.acquire()
        except InstanceLockedError as exc:
            raise LockLostError(f"the lock file {self.path} was replaced and is locked by another process") from exc
        return False


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

    def verify(self) -> bool:
        """True when this session still holds the lock; False when its session had ended and the lock
        was re-taken on a new one; LockLostError when it cannot be re-taken (or the server cannot be
        asked: LockUnconfirmed, and the next call tries again)."""
        if self._conn is not None:
            try:
                held = self._conn.execute(_HELD).scalar()
                self._conn.commit()
                if held:
                    return True
            except Exception:  # the session is gone (server restart, pg_terminate_backend, network)
                pass
            self.release()
        try:
            conn = self.db.engine.connect()
            got = conn.execute(_TRY_LOCK, {"k": _PG_DAEMON_LOCK}).scalar()
            conn.commit()
        except Exception as exc:
            raise LockUnconfirmed(f"the instance lock's session ended and the database cannot be reached to "
                                  f"re-take it: {first_line(exc)}") from exc
        if not got:
            conn.close()
            raise LockLostError("the instance lock's session ended and another daemon holds the lock now")
        self._conn = conn
        return False


def instance_lock(db: Database) -> FileLock | PgAdvisoryLock:
    return FileLock(db.engine.url.database) if db.is_sqlite else PgAdvisoryLock(db)
