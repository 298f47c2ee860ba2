"""`orchestrator db ...`: schema migrations."""

from __future__ import annotations

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.db import migrate
from orchestrator.db.engine import safe_url


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_app
def upgrade(app: AppContext, revision: str) -> None:
    """Migrate the database to the newest schema (safe to run again)."""
    database = app.database(migrate=False)
    migrate.upgrade(database, revision)
    with database.engine.connect() as conn:
        click.echo(f"{safe_url(database.url)} at revision {migrate.current_revision(conn)}")


@db.command("current")
@pass_app
def current(app: AppContext) -> None:
    """Print the database's schema revision and the newest one."""
    database = app.database(migrate=False)
    with database.engine.connect() as conn:
        rev = migrate.current_revision(conn)
    head = migrate.head_revision()
    state = "up to date" if rev == head else "needs `orchestrator db upgrade`"
    click.echo(f"{rev or 'empty'} (head {head}: {state})")
