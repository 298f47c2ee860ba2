"""What to check and how: the typed check definition stored with each component.

Validated at load (unknown keys rejected) so a daemon never starts with a check it cannot run.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from orchestrator.core.defaults import DEFAULT_TLS_CRITICAL_DAYS, DEFAULT_TLS_WARN_DAYS
from orchestrator.core.durations import parse_duration
from orchestrator.core.push_schedule import DEFAULT_PUSH_GRACE_S, check_schedule, check_tz

#: Body bytes read at most from any endpoint: a huge or endless body costs no more than this.
MAX_BODY_BYTES = 64 * 1024
#: Redirects followed at most before the check fails (a loop fails fast).
DEFAULT_MAX_REDIRECTS = 3

_STATUS_RANGE = re.compile(r"^([1-5]\d\d)(?:-([1-5]\d\d))?$")
#: ``$.a.b[0] == "UP"`` / ``$.count == 3`` / ``$.ok == true``
_JSON_CONDITION = re.compile(r"^\$((?:\.[A-Za-z_][\w-]*|\[\d+\])+)\s*(==|!=)\s*(.+)$")


def parse_status_set(value: object) -> list[tuple[int, int]]:
    """``200`` / ``"200-299"`` / ``[200, "300-302"]`` → list of inclusive ranges; ValueError if bad."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("expected at least one status code")
    ranges: list[tuple[int, int]] = []
    for item in items:
        for part in str(item).split(","):
            match = _STATUS_RANGE.match(part.strip())
            if not match:
                raise ValueError(f"not a status code or range: {part.strip()!r} (e.g. 200 or 200-299)")
            low = int(match.group(1))
            high = int(match.group(2) or low)
            if high < low:
                raise ValueError(f"empty status range: {part.strip()!r}")
            ranges.append((low, high))
    return ranges


def validate_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s) URL with a host, got {url!r}")
    if any(ch.isspace() for ch in url):
        raise ValueError("URL must not contain whitespace")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"bad port in URL {url!r}") from exc
    return url


class CheckSpec(BaseModel):
    """How one component is checked. ``kind`` picks the checker; the rest are its settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["http", "tcp", "command", "push"] = "http"
    # http
    url: str | None = None
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: list[str] = Field(default_factory=lambda: ["200-299"])
    body_contains: str | None = None
    #: JSON conditions on the body, all must hold: ``$.status == "UP"``.
    json_conditions: list[str] = Field(default_factory=list)
    max_latency_ms: float | None = Field(default=None, gt=0)
    verify_tls: bool = True
    max_redirects: int = Field(default=DEFAULT_MAX_REDIRECTS, ge=0, le=10)
    #: absolute path of a PEM file of CAs trusted for this check, besides the system's (a private CA)
    tls_ca: str | None = None
    tls_warn_days: float = Field(default=DEFAULT_TLS_WARN_DAYS, ge=0, le=3650)
    tls_critical_days: float = Field(default=DEFAULT_TLS_CRITICAL_DAYS, ge=0, le=3650)
    # tcp: host and port (or taken from url)
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    # command: argv, never a shell
    command: list[str] | None = None
    # push: a success expected every period_s, or on a cron schedule in tz; late after grace_s more
    period_s: float | None = None
    schedule: str | None = None
    tz: str | None = None
    grace_s: float = DEFAULT_PUSH_GRACE_S

    @field_validator("expect_status", mode="before")
    @classmethod
    def _status(cls, value: object) -> list[str]:
        items = value if isinstance(value, list) else [value]
        parse_status_set(items)  # validates
        return [str(item) for item in items]

    @field_validator("json_conditions")
    @classmethod
    def _conditions(cls, value: list[str]) -> list[str]:
        for cond in value:
            if not _JSON_CONDITION.match(cond.strip()):
                raise ValueError(f"not a JSON condition: {cond!r} (e.g. $.status == \"UP\")")
        return value

    @field_validator("tls_ca")
    @classmethod
    def _ca_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"must be an absolute path, got {value!r}")
        return value

    @field_validator("tls_critical_days")
    @classmethod
    def _critical_below_warn(cls, value: float, info: ValidationInfo) -> float:
        warn = info.data.get("tls_warn_days")
        if warn is not None and value > warn:
            raise ValueError(f"{value:g} must not exceed tls_warn_days ({warn:g})")
        return value

    @field_validator("period_s", "grace_s", mode="before")
    @classmethod
    def _push_duration(cls, value: object) -> float | None:
        if value is None:
            return None
        seconds = parse_duration(value)  # type: ignore[arg-type]
        if seconds <= 0:
            raise ValueError("must be positive")
        return seconds

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else check_schedule(value)

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_tz(value)

    @model_validator(mode="after")
    def _kind_fields(self) -> CheckSpec:
        if self.kind == "http":
            if not self.url:
                raise ValueError("url is required for an http check")
            validate_http_url(self.url)
        elif self.kind == "tcp":
            if not (self.host and self.port) and not self.url:
                raise ValueError("a tcp check needs host and port (or a url)")
        elif self.kind == "command":
            if not self.command or not all(isinstance(a, str) and a for a in self.command):
                raise ValueError("a command check needs command: a non-empty list of strings")
        if self.kind != "push" and (self.period_s or self.schedule or self.tz or self.grace_s != DEFAULT_PUSH_GRACE_S):
            raise ValueError("period_s, schedule, tz and grace_s are for a push check (kind: push)")
        if self.kind == "push":
            if (self.period_s is None) == (self.schedule is None):
                raise ValueError("a push check needs either a period or a schedule (not both)")
            if self.tz is not None and self.schedule is None:
                raise ValueError("tz applies to a schedule only")
            if self.url or self.host or self.command:
                raise ValueError("a push check has no url, host or command: it is pinged, never polled")
        return self

    def status_ranges(self) -> list[tuple[int, int]]:
        return parse_status_set(list(self.expect_status))

    def json_condition_parts(self) -> list[tuple[str, str, str]]:
        """Each condition as (path like ``.a[0].b``, operator, JSON literal text)."""
        out = []
        for cond in self.json_conditions:
            match = _JSON_CONDITION.match(cond.strip())
            assert match  # validated at load
            out.append((match.group(1), match.group(2), match.group(3).strip()))
        return out
