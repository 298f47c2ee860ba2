"""The configuration file the service and every CLI command share: ``/etc/orchestrator/orchestrator.toml``.

Without it, a daemon started by systemd and ``orchestrator component add`` typed by an operator each
chose their own state directory (the unit's, the operator's home) and so their own database. With it,
both read the same database URL, plan file and state directory.

Precedence, highest first: a command-line flag, an environment variable, this file, the built-in
default. ``ORCHESTRATOR_CONFIG`` names another file (it must exist); set to the empty string it turns
the file off. Relative paths in the file are relative to the file's folder. An unknown key or a value
of the wrong type exits 2 naming the key (strict, like the plan file: a typo never falls back to a
default silently).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import InputError

if TYPE_CHECKING:  # pydantic is imported when there is a file to validate
    from orchestrator.core.config_model import ConfigFile

CONFIG_ENV = "ORCHESTRATOR_CONFIG"
DEFAULT_CONFIG_PATH = Path("/etc/orchestrator/orchestrator.toml")
#: a configuration file is a screenful; anything larger is the wrong file
MAX_CONFIG_BYTES = 64 * 1024


#: the keys of the file (the fields of :class:`orchestrator.core.config_model.ConfigFile`), all optional
KEYS = ("database_url", "plans", "state_dir", "http", "api_token_file", "retention_raw", "retention_rollups",
        "sentinels", "public_url")


class LoadedConfig:
    """The file's validated keys and where they came from (``path`` None: no file; ``data`` None: every
    key unset, as with no file)."""

    def __init__(self, data: ConfigFile | None, path: Path | None) -> None:
        self.data = data
        self.path = path

    @classmethod
    def absent(cls) -> LoadedConfig:
        """No configuration file: every key unset."""
        return cls(None, None)

    def get(self, key: str) -> Any:
        if self.data is None:
            if key not in KEYS:
                raise AttributeError(f"no configuration key {key!r}")
            return None
        return getattr(self.data, key)

    def path_value(self, key: str) -> Path | None:
        """A path key, made absolute against the file's folder."""
        raw = self.get(key)
        if raw is None:
            return None
        path = Path(raw).expanduser()
        return path if path.is_absolute() or self.path is None else self.path.parent / path


def config_path(env: Mapping[str, str] = os.environ) -> Path | None:
    """The file to read: ORCHESTRATOR_CONFIG (must exist; empty: none), else the default if it exists."""
    named = env.get(CONFIG_ENV)
    if named is not None:
        if not named.strip():
            return None
        path = Path(named)
        if not path.is_file():
            raise InputError(f"no configuration file {named}", field=CONFIG_ENV)
        return path
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_config(env: Mapping[str, str] = os.environ) -> LoadedConfig:
    """Read and validate the configuration file; InputError naming the key (and the file) otherwise."""
    path = config_path(env)
    if path is None:
        return LoadedConfig.absent()
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", field=CONFIG_ENV) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise InputError(f"{path} is larger than {MAX_CONFIG_BYTES // 1024} KiB", field=CONFIG_ENV)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML: {exc} ({path})", field=CONFIG_ENV) from None
    from pydantic import ValidationError

    from orchestrator.core.config_model import ConfigFile

    try:
        return LoadedConfig(ConfigFile.model_validate(data), path)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "$"
        message = {"extra_forbidden": f"unknown key (known: {', '.join(ConfigFile.model_fields)})"}.get(
            err["type"], err["msg"].removeprefix("Value error, ").replace("Input should be", "expected"))
        raise InputError(f"{message} ({path})", field=key) from None


def __getattr__(name: str) -> Any:
    """``ConfigFile`` from its own module, on first use (it needs pydantic)."""
    if name == "ConfigFile":
        from orchestrator.core.config_model import ConfigFile

        return ConfigFile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
