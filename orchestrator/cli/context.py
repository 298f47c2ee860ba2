"""What every command shares: the resolved settings, a lazily opened database, the plan file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from orchestrator.core.config import resolve_db_url, resolve_plans_path
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema


@dataclass
class AppContext:
    db_flag: str | None = None
    plans_flag: str | None = None
    _db: Database | None = field(default=None, repr=False)

    @property
    def db_url(self) -> str:
        return resolve_db_url(self.db_flag)

    @property
    def plans_path(self) -> Path | None:
        return resolve_plans_path(self.plans_flag)

    def database(self, *, migrate: bool = True) -> Database:
        """The database, reachable and at the current schema (an empty one is migrated first)."""
        if self._db is None:
            db = Database(self.db_url)
            if migrate:
                ensure_schema(db)
            else:
                db.check_reachable()
            self._db = db
        return self._db

    def plan_names(self) -> set[str] | None:
        """Names of the plans in the plan file, or None when there is no plan file."""
        from orchestrator.plans import load_plans

        path = self.plans_path
        if path is None:
            return None
        return set(load_plans(path).plans)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


pass_app = click.make_pass_decorator(AppContext)
