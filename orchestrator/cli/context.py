"""What every command shares: the configuration file, the resolved settings, a lazily opened database,
the plan file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.core.config import (
    PUBLIC_URL_ENV,
    db_url_source,
    resolve_db_url,
    resolve_plans_path,
    state_dir,
)
from orchestrator.core.config_file import LoadedConfig

if TYPE_CHECKING:  # SQLAlchemy is imported when a command opens the database, not for --help
    from orchestrator.db.engine import Database


@dataclass
class AppContext:
    db_flag: str | None = None
    plans_flag: str | None = None
    #: orchestrator.toml (or ORCHESTRATOR_CONFIG), read once when the command starts
    config: LoadedConfig = field(default_factory=LoadedConfig.absent)
    _db: Database | None = field(default=None, repr=False)

    @property
    def db_url(self) -> str:
        """The database URL. The default SQLite file's directory (the state dir) is created on first
        use; the directory of a URL the operator gave must already exist."""
        if db_url_source(self.db_flag, config=self.config) is None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        return resolve_db_url(self.db_flag, config=self.config)

    @property
    def db_field(self) -> str:
        """The flag, variable or config key the URL came from, as errors name it."""
        return db_url_source(self.db_flag, config=self.config) or "--db"

    @property
    def plans_path(self) -> Path | None:
        return resolve_plans_path(self.plans_flag, config=self.config)

    @property
    def state_dir(self) -> Path:
        return state_dir(config=self.config)

    @property
    def public_url(self) -> str | None:
        """The status page's address as operators reach it (ORCHESTRATOR_PUBLIC_URL, then the file)."""
        return os.environ.get(PUBLIC_URL_ENV) or self.config.get("public_url")

    def configured(self, key: str, given: object = None) -> object:
        """``given`` (a command's own flag or its variable, as Click resolved it) when set, else the
        configuration file's ``key`` (paths made absolute), else None: the command's default applies."""
        if given not in (None, (), []):
            return given
        return self.config.path_value(key) if key == "api_token_file" else self.config.get(key)

    def database(self, *, migrate: bool = True) -> Database:
        """The database, reachable and at the current schema (an empty one is migrated first)."""
        if self._db is None:
            from orchestrator.db.engine import Database
            from orchestrator.db.migrate import ensure_schema

            db = Database(self.db_url, field=self.db_field)
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
