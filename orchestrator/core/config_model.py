"""The keys of orchestrator.toml and their validation (pydantic): imported only when a file is read.

:mod:`orchestrator.core.config_file` finds and reads the file; a command run without one never pays for
pydantic (``KEYS`` there lists these fields, tests/test_cli_imports.py keeps the two equal).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

from orchestrator.core.durations import parse_duration
from orchestrator.core.redaction import redact


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
