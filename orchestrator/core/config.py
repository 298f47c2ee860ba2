"""Where things live and the environment switches named in the requirements.

Precedence: command-line flag, then environment variable, then default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.errors import InputError

DB_URL_ENV = "ORCHESTRATOR_DB_URL"
PLANS_ENV = "ORCHESTRATOR_PLANS"
HOME_ENV = "ORCHESTRATOR_HOME"
#: default plan file locations, first existing wins
DEFAULT_PLAN_PATHS = (Path("recovery_strategies.json"), Path("/etc/orchestrator/recovery_strategies.json"))
DB_FILENAME = "orchestrator.db"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def state_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The per-user state directory (``ORCHESTRATOR_HOME`` overrides; the systemd unit sets it)."""
    if env.get(HOME_ENV):
        return Path(env[HOME_ENV])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "orchestrator"


def default_db_url(env: Mapping[str, str] = os.environ) -> str:
    return f"sqlite:///{state_dir(env) / DB_FILENAME}"


def resolve_db_url(flag: str | None, env: Mapping[str, str] = os.environ) -> str:
    return flag or env.get(DB_URL_ENV) or default_db_url(env)


def db_url_source(flag: str | None, env: Mapping[str, str] = os.environ) -> str | None:
    """Where the database URL comes from, for error messages: ``--db``, the variable, or None (default)."""
    if flag:
        return "--db"
    return DB_URL_ENV if env.get(DB_URL_ENV) else None


def resolve_plans_path(flag: str | None, env: Mapping[str, str] = os.environ) -> Path | None:
    """The plan file to use, or None when there is none anywhere (components then have no plans)."""
    if flag:
        return Path(flag)
    if env.get(PLANS_ENV):
        return Path(env[PLANS_ENV])
    for candidate in DEFAULT_PLAN_PATHS:
        if candidate.exists():
            return candidate
    return None


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InputError(f"expected true or false, got {raw!r}", field=name)


@dataclass(frozen=True)
class Switches:
    """Environment overrides kept with the names of the original requirements."""

    #: false = observe and record only, never act
    error_handling_enabled: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Switches:
        return cls(error_handling_enabled=env_bool(env, "ERROR_HANDLING_ENABLED", True))
