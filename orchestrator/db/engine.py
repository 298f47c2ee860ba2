"""Engines and sessions for SQLite (default, single instance) and PostgreSQL (production, HA).

SQLite gets WAL (readers never block the writer), a busy timeout, foreign keys, and ``BEGIN IMMEDIATE``
for write transactions: a plain deferred BEGIN upgrades its lock at the first write and fails at once
with "database is locked" when another writer got there first, whatever the busy timeout says.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session

from orchestrator.core.errors import DatabaseError, InputError, first_line
from orchestrator.core.redaction import redact_url

#: how long a SQLite writer waits for another's lock before failing
SQLITE_BUSY_TIMEOUT_MS = 15_000
_IMMEDIATE = "orchestrator_immediate"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Take transaction control from the driver so "begin" below decides the BEGIN kind.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")  # durable in WAL mode except on power loss
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def rows_changed(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE run through ``Session.execute`` matched (a compare-and-set won when 1).

    ``Session.execute`` is typed as returning a plain Result for every statement; for DML it is the
    CursorResult that carries ``rowcount``."""
    return cast(CursorResult[Any], result).rowcount


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    return redact_url(url)


#: What ``--db`` accepts, for error messages.
URL_FORMS = "sqlite:///PATH or postgresql+psycopg://USER@HOST/DBNAME"
#: Drivers people type out of habit, and what to write instead.
_DRIVER_HINTS = {
    "postgresql+psycopg2": "use postgresql+psycopg:// (psycopg 3, installed with the orchestrator)",
    "postgresql+asyncpg": "use postgresql+psycopg:// (the orchestrator is not async)",
    "postgresql+pg8000": "use postgresql+psycopg:// (psycopg 3, installed with the orchestrator)",
    "postgres": "use postgresql+psycopg:// (SQLAlchemy does not know the short 'postgres' name)",
}
_SUPPORTED_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg"})


def _parse(url: str, field: str) -> URL:
    """The parsed URL, or InputError naming what was typed and the right form."""
    if "\x00" in url:
        raise InputError("the database URL contains a NUL character", field=field)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise InputError(f"not a database URL: {safe_url(url)!r} (use {URL_FORMS})", field=field) from None
    driver = parsed.drivername
    if driver in _SUPPORTED_DRIVERS:
        return parsed
    hint = _DRIVER_HINTS.get(driver) or _DRIVER_HINTS.get(parsed.get_backend_name())
    if hint is None and parsed.get_backend_name() in ("sqlite", "postgresql"):
        hint = f"use {parsed.get_backend_name()}:// with the default driver"
    raise InputError(f"unsupported database {driver!r} in {safe_url(url)!r}: {hint or f'use {URL_FORMS}'}",
                     field=field)


def _check_sqlite_dir(parsed: URL, field: str) -> None:
    """A SQLite file needs an existing directory: a typo must not create folders wherever we run."""
    if not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return
    folder = Path(parsed.database).expanduser().parent
    if not folder.is_dir():
        raise InputError(f"directory {str(folder)!r} of the SQLite file does not exist (create it first)",
                         field=field)


class Database:
    """One engine plus the two ways to use it: ``read()`` and ``write()`` sessions.

    ``field`` names where the URL came from (``--db`` or ``ORCHESTRATOR_DB_URL``) in errors.
    """

    def __init__(self, url: str, *, echo: bool = False, field: str = "--db") -> None:
        parsed = _parse(url, field)
        self.url = url
        self.dialect = parsed.get_backend_name()
        try:
            self.engine = self._create(parsed, url, echo, field)
        except ArgumentError as exc:  # e.g. sqlite://host: SQLAlchemy's own view of a bad URL
            reason = first_line(exc)
            raise InputError(f"{reason} in {safe_url(url)!r} (use {URL_FORMS})", field=field) from None
        self.write_engine = self.engine.execution_options(**{_IMMEDIATE: True})

    def _create(self, parsed: URL, url: str, echo: bool, field: str) -> Engine:
        if self.dialect == "sqlite":
            _check_sqlite_dir(parsed, field)
            engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
            _sqlite_setup(engine)
            return engine
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, echo=echo, pool_pre_ping=True, pool_size=8, max_overflow=8,
                             connect_args={"connect_timeout": 5})

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def check_reachable(self) -> None:
        """Raise DatabaseError with one clear line if the database cannot be reached."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except OperationalError as exc:
            reason = first_line(exc.orig) if exc.orig else str(exc)
            raise DatabaseError(f"cannot reach database {safe_url(self.url)}: {reason}") from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session in one write transaction, committed on success, rolled back on error."""
        with Session(self.write_engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextlib.contextmanager
    def write_conn(self) -> Iterator[Connection]:
        """A Core connection in one write transaction (batch inserts)."""
        with self.write_engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()
