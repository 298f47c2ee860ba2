"""Where things live and the environment switches named in the requirements.

Precedence, highest first: command-line flag, environment variable, the configuration file
(orchestrator.toml, see :mod:`orchestrator.core.config_file`), the built-in default. Each resolver
takes the loaded file (None: no file) and returns the value; :func:`effective` also says where each
value came from (``orchestrator config show``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from orchestrator.core.config_file import CONFIG_ENV, LoadedConfig
from orchestrator.core.errors import InputError

DB_URL_ENV = "ORCHESTRATOR_DB_URL"
PLANS_ENV = "ORCHESTRATOR_PLANS"
HOME_ENV = "ORCHESTRATOR_HOME"
# The same names as orchestrator.web.server.HTTP_ENV and orchestrator.web.auth.TOKEN_ENV (core cannot
# import web): the variables that override the file's http and api_token_file.
HTTP_ENV = "ORCHESTRATOR_HTTP"
TOKEN_ENV = "ORCHESTRATOR_API_TOKEN"
SENTINELS_ENV = "ORCHESTRATOR_SENTINELS"
PUBLIC_URL_ENV = "ORCHESTRATOR_PUBLIC_URL"
#: default plan file locations, first existing wins
DEFAULT_PLAN_PATHS = (Path("recovery_strategies.json"), Path("/etc/orchestrator/recovery_strategies.json"))
DB_FILENAME = "orchestrator.db"
#: where the source of a built-in default is shown as coming from
DEFAULT = "default"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


V = TypeVar("V")


@dataclass(frozen=True)
class Setting(Generic[V]):
    """One effective value and where it came from: a flag (``--db``), a variable, the file's path, or
    ``default``."""

    value: V
    source: str


def _from_file(config: LoadedConfig | None, key: str, *, path: bool = False) -> Setting[Any] | None:
    if config is None or config.get(key) is None:
        return None
    return Setting(config.path_value(key) if path else config.get(key), f"{config.path}")


def state_dir_setting(env: Mapping[str, str] = os.environ, config: LoadedConfig | None = None) -> Setting[Path]:
    if env.get(HOME_ENV):
        return Setting(Path(env[HOME_ENV]), HOME_ENV)
    if found := _from_file(config, "state_dir", path=True):
        return found
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Setting(Path(base) / "orchestrator", DEFAULT)


def state_dir(env: Mapping[str, str] = os.environ, config: LoadedConfig | None = None) -> Path:
    """The state directory (``ORCHESTRATOR_HOME``, then the file's ``state_dir``, then per user)."""
    return state_dir_setting(env, config).value


def default_db_url(env: Mapping[str, str] = os.environ, config: LoadedConfig | None = None) -> str:
    return f"sqlite:///{state_dir(env, config) / DB_FILENAME}"


def db_url_setting(flag: str | None, env: Mapping[str, str] = os.environ,
                   config: LoadedConfig | None = None) -> Setting[str]:
    if flag:
        return Setting(flag, "--db")
    if env.get(DB_URL_ENV):
        return Setting(env[DB_URL_ENV], DB_URL_ENV)
    return _from_file(config, "database_url") or Setting(default_db_url(env, config), DEFAULT)


def resolve_db_url(flag: str | None, env: Mapping[str, str] = os.environ, config: LoadedConfig | None = None) -> str:
    return db_url_setting(flag, env, config).value


def db_url_source(flag: str | None, env: Mapping[str, str] = os.environ,
                  config: LoadedConfig | None = None) -> str | None:
    """Where the database URL comes from, for error messages: ``--db``, the variable, the config
    file's key, or None (the default)."""
    source = db_url_setting(flag, env, config).source
    if source == DEFAULT:
        return None
    return source if source in ("--db", DB_URL_ENV) else "database_url"


def plans_setting(flag: str | None, env: Mapping[str, str] = os.environ,
                  config: LoadedConfig | None = None) -> Setting[Path | None]:
    if flag:
        return Setting(Path(flag), "--plans")
    if env.get(PLANS_ENV):
        return Setting(Path(env[PLANS_ENV]), PLANS_ENV)
    if found := _from_file(config, "plans", path=True):
        return found
    return Setting(next((c for c in DEFAULT_PLAN_PATHS if c.exists()), None), DEFAULT)


def resolve_plans_path(flag: str | None, env: Mapping[str, str] = os.environ,
                       config: LoadedConfig | None = None) -> Path | None:
    """The plan file to use, or None when there is none anywhere (components then have no plans)."""
    return plans_setting(flag, env, config).value


def effective(config: LoadedConfig, *, db_flag: str | None = None, plans_flag: str | None = None,
              env: Mapping[str, str] = os.environ, defaults: Mapping[str, Any] | None = None) -> dict[str, Setting[Any]]:
    """Every key of the configuration file with its effective value and source, as a command given
    only the global flags would see it (``run``'s own flags override ``http``, retention, sentinels).
    ``defaults`` supplies the built-in defaults owned above this floor (retention)."""
    owned = defaults or {}

    def plain(key: str, env_name: str | None, default: Any, *, path: bool = False) -> Setting[Any]:
        if env_name and env.get(env_name):
            value = env[env_name]
            return Setting(value.split() if key == "sentinels" else value, env_name)
        return _from_file(config, key, path=path) or Setting(default, DEFAULT)

    token = Setting(None, TOKEN_ENV) if env.get(TOKEN_ENV) else plain("api_token_file", None, None, path=True)
    return {
        "config_file": Setting(config.path, CONFIG_ENV if env.get(CONFIG_ENV) else DEFAULT),
        "database_url": db_url_setting(db_flag, env, config),
        "plans": plans_setting(plans_flag, env, config),
        "state_dir": state_dir_setting(env, config),
        "http": plain("http", HTTP_ENV, None),
        "api_token_file": token,
        "retention_raw": plain("retention_raw", None, owned.get("retention_raw")),
        "retention_rollups": plain("retention_rollups", None, owned.get("retention_rollups")),
        "sentinels": plain("sentinels", SENTINELS_ENV, []),
        "public_url": plain("public_url", PUBLIC_URL_ENV, None),
    }


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
