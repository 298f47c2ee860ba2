"""Alembic environment: the URL comes from the application's settings, or a connection is passed in."""

from __future__ import annotations

from alembic import context

from orchestrator.core.config import resolve_db_url
from orchestrator.db.engine import Database
from orchestrator.db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode recreates the table instead
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(url=resolve_db_url(None), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    db = Database(resolve_db_url(None))
    with db.write_engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    db.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
