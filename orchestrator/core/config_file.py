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
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import InputError
from orchestrator.core.redaction import redact

CONFIG_ENV = "ORCHESTRATOR_CONFIG"
DEFAULT_CONFIG_PATH = Path("/etc/orchestrator/orchestrator.toml")
#: a configuration file is a screenful; anything larger is the wrong file
MAX_CONFIG_BYTES = 64 * 1024


def _http_url(value: str) -> str:
    """An http(s) URL with a host (the checks' stricter rules apply again where the URL is used)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {redact(value)!r}")
    return value


class ConfigFile(BaseModel):
    """The keys of orchestrator.toml, all optional. Durations are seconds after validation."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: like ``--db`` / ORCHESTRATOR_DB_URL; default: SQLite in the state directory
    database_url: str | None = None
    #: like ``--plans`` / ORCHESTRATOR_PLANS
    plans: str | None = None
    #: like ORCHESTRATOR_HOME: the default SQLite file and degradation.json live here
    state_dir: str | None = None
    #: like ``--http`` / ORCHESTRATOR_HTTP: where ``run`` (and ``web``) serve, HOST:PORT
    http: str | None = None
    #: like ``--api-token-file``; ORCHESTRATOR_API_TOKEN overrides it
    api_token_file: str | None = None
    #: like ``run --retention-raw`` / ``--retention-rollups``
    retention_raw: float | None = None
    retention_rollups: float | None = None
    #: like ``run --sentinel`` / ORCHESTRATOR_SENTINELS
    sentinels: list[str] | None = None
    #: the status page's address as operators reach it (behind a proxy), like ORCHESTRATOR_PUBLIC_URL
    public_url: str | None = None

    @field_validator("retention_raw", "retention_rollups", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError('expected a duration such as "7d" or a number of seconds')
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError("must be positive")
        return seconds

    @field_validator("database_url", "plans", "state_dir", "http", "api_token_file", "public_url")
    @classmethod
    def _not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty (leave the key out for the default)")
        return value

    @field_validator("sentinels")
    @classmethod
    def _sentinels(cls, value: list[str] | None) -> list[str] | None:
        for url in value or []:
            _http_url(url)
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


class LoadedConfig:
    """The file's validated keys and where they came from (``path`` None: no file)."""

    def __init__(self, data: ConfigFile, path: Path | None) -> None:
        self.data = data
        self.path = path

    def get(self, key: str) -> Any:
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
        return LoadedConfig(ConfigFile(), None)
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
    try:
        return LoadedConfig(ConfigFile.model_validate(data), path)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "$"
        message = {"extra_forbidden": f"unknown key (known: {', '.join(ConfigFile.model_fields)})"}.get(
            err["type"], err["msg"].removeprefix("Value error, ").replace("Input should be", "expected"))
        raise InputError(f"{message} ({path})", field=key) from None
