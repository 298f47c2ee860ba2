"""Shared fixtures: a migrated database on SQLite and on the real PostgreSQL, and a CLI runner.

PostgreSQL tests run when ORCHESTRATOR_TEST_PG_URL is set (CI sets it) and FAIL if that server cannot be
reached; without the variable they skip with a visible reason. Each PostgreSQL test gets its own schema,
so tests never see each other's rows.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema

PG_ENV = "ORCHESTRATOR_TEST_PG_URL"
PG_URL = os.environ.get(PG_ENV)


def pytest_sessionstart(session: pytest.Session) -> None:
    if PG_URL:
        try:
            engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 5})
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            engine.dispose()
        except Exception as exc:  # noqa: BLE001 - any failure to connect must stop the run
            pytest.exit(f"{PG_ENV} is set but PostgreSQL is unreachable: {exc}", returncode=3)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever touches the real state directory or a stray plan file in the working directory."""
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ORCHESTRATOR_DB_URL", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_PLANS", raising=False)
    for name in ("ERROR_HANDLING_ENABLED", "CIRCUIT_BREAKER_THRESHOLD", "RETRY_MAX_ATTEMPTS", "RECOVERY_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


def _pg_schema_url(schema: str) -> str:
    assert PG_URL
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A URL to an empty private schema of the test PostgreSQL (dropped afterwards)."""
    if not PG_URL:
        pytest.skip(f"PostgreSQL tests need {PG_ENV}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orchestrator.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated database on each backend."""
    database = Database(db_url)
    ensure_schema(database)
    yield database
    database.dispose()


def snapshot(database: Database) -> str:
    """A digest of every row of every table, plus the SQLite file bytes: 'changed nothing' made checkable."""
    digest = hashlib.sha256()
    with database.engine.connect() as conn:
        for table in sorted(sa.inspect(conn).get_table_names()):
            rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            digest.update(table.encode())
            for row in sorted(repr(tuple(r)) for r in rows):
                digest.update(row.encode())
    database.dispose()
    if database.is_sqlite:
        path = Path(database.engine.url.database)
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def run_cli(runner: CliRunner, db_url: str):
    """Invoke the CLI against this test's database; returns the click Result."""
    from orchestrator.cli import cli

    def invoke(*args: str, input: str | None = None, plans: str | None = None):
        argv = ["--db", db_url]
        if plans:
            argv += ["--plans", plans]
        return runner.invoke(cli, [*argv, *args], input=input, catch_exceptions=False)

    return invoke
