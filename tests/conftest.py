"""Shared fixtures: a migrated database on SQLite and on the real PostgreSQL, and a CLI runner.

PostgreSQL tests run when ORCHESTRATOR_TEST_PG_URL is set (CI sets it) and FAIL if that server cannot be
reached; without the variable they skip with a visible reason. Each PostgreSQL test gets its own schema,
so tests never see each other's rows.

The migrations run once per session into a template (a SQLite file; a PostgreSQL schema dumped with
``pg_dump``), and each test's database is a copy of it: migrating some 600 databases one by one took
about two minutes of the suite. The migrations themselves are tested on empty databases
(``test_migrations.py``); without ``pg_dump`` each PostgreSQL test is migrated as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` first (a stable sort: the same order in every xdist worker). xdist hands tests
    out in this order, so the half-minute ones start at once instead of ending the run on one worker while
    the others have nothing left to do."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """A command run in-process (``run``, ``web``) sets up logging for the whole process (root level and
    handlers): put both back, or a later test's ``caplog`` sees nothing below that level."""
    import logging

    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever touches the real state directory or a stray plan file in the working directory."""
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ORCHESTRATOR_DB_URL", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_PLANS", raising=False)
    monkeypatch.setenv("ORCHESTRATOR_CONFIG", "")  # never this machine's /etc/orchestrator/orchestrator.toml
    # an xdist worker has COLUMNS=80 in its environment: piped CLI tables would be cut at 80 columns
    # instead of the 200 they get when piped (the tests read cells out of them)
    monkeypatch.delenv("COLUMNS", raising=False)
    for name in ("ERROR_HANDLING_ENABLED", "CIRCUIT_BREAKER_THRESHOLD", "RETRY_MAX_ATTEMPTS", "RECOVERY_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


def _pg_schema_url(schema: str) -> str:
    assert PG_URL
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """One engine on the test PostgreSQL for creating and dropping the tests' schemas."""
    if not PG_URL:
        pytest.skip(f"PostgreSQL tests need {PG_ENV}")
    admin = sa.create_engine(PG_URL)
    yield admin
    admin.dispose()


@pytest.fixture
def pg_schema(pg_admin: sa.Engine) -> Iterator[str]:
    """The name of an empty private schema of the test PostgreSQL (dropped afterwards)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with pg_admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with pg_admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pg_schema_url(pg_schema: str) -> str:
    """A URL to an empty private schema of the test PostgreSQL (dropped afterwards)."""
    return _pg_schema_url(pg_schema)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "orchestrator.db"
    database = Database(f"sqlite:///{path}")
    ensure_schema(database)
    database.dispose()
    return path


@pytest.fixture(scope="session")
def pg_template() -> tuple[str, str] | None:
    """(schema name, SQL script) of a migrated schema, replayed into each test's schema; None
    without PostgreSQL or ``pg_dump``."""
    if not PG_URL or shutil.which("pg_dump") is None:
        return None
    schema = f"t_template_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        database = Database(_pg_schema_url(schema))
        ensure_schema(database)
        database.dispose()
        libpq_url = sa.engine.make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
        dump = subprocess.run(["pg_dump", "--dbname", libpq_url, "--schema", schema, "--no-owner", "--no-privileges",
                               "--inserts"], capture_output=True, text=True, timeout=60)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
    if dump.returncode != 0:
        return None
    # the test's schema exists already; psql's own commands (\restrict ...) are not SQL
    lines = [line for line in dump.stdout.splitlines()
             if not line.startswith(("CREATE SCHEMA", "\\"))]
    return schema, "\n".join([*lines, "RESET search_path;"])  # the dump empties it for the session


def _copy_template(request: pytest.FixtureRequest, url: str) -> None:
    """Make the database at ``url``, if still empty, a copy of the migrated template."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return
    pg = request.getfixturevalue("pg_template")
    if pg is None:
        return
    template_schema, script = pg
    schema = request.getfixturevalue("pg_schema")
    raw = request.getfixturevalue("pg_admin").raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,))
        if cursor.fetchone()[0] == 0:
            cursor.execute(script.replace(template_schema, schema))
        raw.commit()
    finally:
        raw.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orchestrator.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def db(request: pytest.FixtureRequest, db_url: str) -> Iterator[Database]:
    """A migrated database on each backend (a copy of the session's template)."""
    _copy_template(request, db_url)
    database = Database(db_url)
    ensure_schema(database)  # at head already: checks that the copy is
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
def run_cli(request: pytest.FixtureRequest, runner: CliRunner, db_url: str):
    """Invoke the CLI against this test's database (migrated: a copy of the template); returns the
    click Result."""
    from orchestrator.cli import cli

    _copy_template(request, db_url)

    def invoke(*args: str, input: str | None = None, plans: str | None = None):
        argv = ["--db", db_url]
        if plans:
            argv += ["--plans", plans]
        return runner.invoke(cli, [*argv, *args], input=input, catch_exceptions=False)

    return invoke
