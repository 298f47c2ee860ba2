"""Alembic from inside the application: upgrade, current revision, and the first-use check.

A brand-new (empty) database is migrated on first use. An existing database at an older revision is
refused with one line naming ``orchestrator db upgrade``: silently changing a production schema from
whatever command happened to run first would be a surprise.

Alembic itself is imported only by the ``db`` commands and when a database is not at ``HEAD_REVISION``:
the check every command makes on opening compares the stored revision with that constant in plain SQL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from orchestrator.core.errors import DatabaseError, SchemaOutdatedError
from orchestrator.db.engine import Database

if TYPE_CHECKING:  # alembic is imported where a migration runs or the scripts are read
    from alembic.config import Config

#: where a wheel carries the migrations (copied there from the top-level folder by setup.py)
PACKAGED_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: the top-level folder of a source checkout (and of an editable install)
SOURCE_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
#: serialises concurrent first-use migrations of one PostgreSQL database by several instances
_PG_MIGRATION_LOCK = 0x0C4E57
#: The newest revision in migrations/versions, so opening a database at the current schema needs no
#: Alembic (a third of a second of imports per CLI command). A new migration changes it in the same
#: commit: tests/test_cli_imports.py fails while it differs from Alembic's own head.
HEAD_REVISION = "0018"
#: the ``down_revision = ...`` line of a migration script, and the revision ids quoted in it
_DOWN_REVISION = re.compile(r"^down_revision\b[^=]*=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")


def migrations_dir() -> Path:
    """The Alembic script folder: the packaged copy in an installed wheel, else the source tree's."""
    for candidate in (PACKAGED_MIGRATIONS, SOURCE_MIGRATIONS):
        if (candidate / "env.py").is_file():
            return candidate
    raise DatabaseError(f"migrations not found (looked in {PACKAGED_MIGRATIONS} and {SOURCE_MIGRATIONS}): "
                        "reinstall the orchestrator")


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic settings built in code, so an installed daemon needs no alembic.ini (developers keep theirs
    at the top level for `alembic revision`)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision as Alembic reads it from the scripts (``HEAD_REVISION`` without Alembic)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def stored_revision(conn: Connection) -> str | None:
    """The revision recorded in ``alembic_version`` read in plain SQL (None: no table, no row, or more
    than one row, which only Alembic can make sense of)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows[0] if len(rows) == 1 else None


def head_constant_is_newest() -> bool:
    """Whether no migration script revises ``HEAD_REVISION`` (read from the scripts' text, not with
    Alembic). A script added without moving the constant must not let a database it would change pass
    as current: code writing to a schema older than it expects fails its writes (invariant 4, nothing
    lost); then the check falls back to Alembic, which refuses the database with one line."""
    try:
        scripts = sorted((migrations_dir() / "versions").glob("*.py"))
        texts = [path.read_text(encoding="utf-8") for path in scripts]
    except (DatabaseError, OSError, UnicodeDecodeError):
        return False
    for text_ in texts:
        match = _DOWN_REVISION.search(text_)
        if match and HEAD_REVISION in _QUOTED.findall(match.group(1)):
            return False
    return True


def upgrade(db: Database, revision: str = "head") -> None:
    from alembic import command

    with db.write_engine.begin() as conn:
        _lock(conn)
        command.upgrade(alembic_config(conn), revision)


def downgrade(db: Database, revision: str) -> None:
    from alembic import command

    with db.write_engine.begin() as conn:
        _lock(conn)
        command.downgrade(alembic_config(conn), revision)


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})


def ensure_schema(db: Database) -> None:
    """Migrate an empty database; accept one at head; refuse anything else with one clear line."""
    db.check_reachable()
    with db.engine.connect() as conn:
        if stored_revision(conn) == HEAD_REVISION and head_constant_is_newest():
            return
    from alembic.script import ScriptDirectory

    head = head_revision()
    with db.engine.connect() as conn:
        current = current_revision(conn)
        empty = set(inspect(conn).get_table_names()) <= {"alembic_version"}
    if current == head:
        return
    if current is None and empty:
        upgrade(db)
        return
    if current is None:
        raise DatabaseError("database has tables but no migration record: is it an orchestrator database?")
    script = ScriptDirectory.from_config(alembic_config())
    if script.get_revision(current) is None:
        raise DatabaseError(f"database is at revision {current}, newer than this orchestrator knows")
    raise SchemaOutdatedError(
        f"database is at revision {current}, this version needs {head}: run `orchestrator db upgrade`"
    )
