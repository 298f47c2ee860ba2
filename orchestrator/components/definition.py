"""The definition of one component, as an operator writes it (CLI flags or an apply file).

One typed model validates both, so ``component add`` and ``apply -f`` accept exactly the same things.
The definition is what the operator owns; live state (up/down, counters) lives beside it in the row.
"""

from __future__ import annotations

import re
import ssl
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.core.check_spec import CheckSpec, parse_status_set, validate_http_url
from orchestrator.core.defaults import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_INTERVAL_S,
    DEFAULT_MAX_PROBE_INTERVAL_S,
    DEFAULT_RETRY_INTERVAL_S,
    DEFAULT_SUCCESS_THRESHOLD,
    DEFAULT_TIMEOUT_S,
    MAX_PROBE_INTERVALS,
    MAX_REPLICAS,
    MIN_INTERVAL_S,
    MIN_TIMEOUT_S,
    PUSH_FAILURE_THRESHOLD,
    PUSH_INTERVAL_S,
    PUSH_SUCCESS_THRESHOLD,
    default_timeout_s,
)
from orchestrator.core.durations import parse_duration
from orchestrator.core.secret_refs import check_references
from orchestrator.core.states import Criticality
from orchestrator.degradation.early_warning import EarlyWarningSettings, settings_from

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,62}$")
#: a label or var value: any text, bounded so a typo cannot bloat every row
MAX_VALUE_LEN = 1024

def default_retry_interval_s(interval_s: float) -> float:
    """The re-check delay after a first failure when none is given: min(1 s, interval / 5)."""
    return min(DEFAULT_RETRY_INTERVAL_S, interval_s / 5)


def default_max_probe_interval_s(interval_s: float) -> float:
    """The DOWN probe backoff's cap when none is given: min(30 s, 5 × interval), never below the
    interval itself (a component checked every minute is still probed every minute)."""
    return max(interval_s, min(DEFAULT_MAX_PROBE_INTERVAL_S, MAX_PROBE_INTERVALS * interval_s))


def check_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(f"invalid {what} {name!r}: use 1-63 of a-z 0-9 . _ - starting with a letter or digit")
    return name


def _duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be positive")
    return seconds


def _at_least(seconds: float, floor_s: float) -> float:
    if seconds < floor_s:
        raise ValueError(f"must be at least {floor_s * 1000:g}ms, got {seconds:g}s")
    return seconds


def _check_spec_references(spec: CheckSpec) -> None:
    """Refuse a malformed ``${env:…}``/``${file:…}`` in the check's url, headers, command or host."""
    texts = [("url", spec.url or ""), ("host", spec.host or ""), *(("headers", v) for v in spec.headers.values()),
             *(("command", arg) for arg in spec.command or [])]
    for field, text in texts:
        try:
            check_references(text)
        except ValueError as exc:
            raise ValueError(f"check.{field}: {exc}") from None


def _check_tls_ca(spec: CheckSpec) -> None:
    """Refuse a ``tls_ca`` that is not a readable PEM file of certificates (found now, not at 3 a.m.)."""
    if spec.tls_ca is None:
        return
    try:
        ssl.create_default_context(cafile=spec.tls_ca)
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or "not a PEM file of certificates"
        raise ValueError(f"check.tls_ca: cannot load {spec.tls_ca}: {reason}") from None


def _references_ok(values: dict[str, str]) -> dict[str, str]:
    for text in values.values():
        check_references(text)
    return values


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a mapping of key to text")
    out = {}
    for key, val in value.items():
        if not isinstance(key, str) or not LABEL_KEY_RE.match(key):
            raise ValueError(f"invalid {what} key {key!r}")
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            raise ValueError(f"{what} {key!r} must be text")
        text = str(val)
        if len(text) > MAX_VALUE_LEN:
            raise ValueError(f"{what} {key!r} is longer than {MAX_VALUE_LEN} characters")
        out[key] = text
    return out


class PushSection(BaseModel):
    """``push:`` of an apply file (or ``--push`` flags): a heartbeat monitor, pinged by the job itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: str | float | None = None
    schedule: str | None = None
    tz: str | None = None
    grace: str | float | None = None

    def check(self) -> dict[str, Any]:
        """The check section it stands for (validated by CheckSpec, errors named check.<field>)."""
        out: dict[str, Any] = {"kind": "push", "period_s": self.period, "schedule": self.schedule, "tz": self.tz}
        if self.grace is not None:
            out["grace_s"] = self.grace
        return {k: v for k, v in out.items() if v is not None}


def _is_push(data: dict[str, Any]) -> bool:
    check = data.get("check")
    return data.get("push") is not None or (isinstance(check, dict) and check.get("kind") == "push")


class ComponentSpec(BaseModel):
    """Everything an operator declares about a component. Durations are seconds after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str | None = None
    check: CheckSpec | None = None
    interval: float = DEFAULT_INTERVAL_S
    #: None (or left out) means default_timeout_s(interval)
    timeout: float = DEFAULT_TIMEOUT_S
    failure_threshold: int = Field(default=DEFAULT_FAILURE_THRESHOLD, ge=1, le=100)
    success_threshold: int = Field(default=DEFAULT_SUCCESS_THRESHOLD, ge=1, le=100)
    retry_interval: float | None = None
    #: longest wait between probes while DOWN; None means default_max_probe_interval_s(interval)
    max_probe_interval: float | None = None
    plan: str | None = None
    depends_on: tuple[str, ...] = ()
    criticality: Criticality = Criticality.NORMAL
    expect_status: list[str] | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    vars: dict[str, str] = Field(default_factory=dict)
    #: vars whose values are secret whatever their names (``--secret-var``, ``secret_vars:``)
    secret_vars: dict[str, str] = Field(default_factory=dict)
    backup_url: str | None = None
    replicas: int | None = Field(default=None, ge=0, le=MAX_REPLICAS)
    min_replicas: int | None = Field(default=None, ge=0, le=MAX_REPLICAS)
    max_replicas: int | None = Field(default=None, ge=0, le=MAX_REPLICAS)
    #: overrides of the early warning's defaults (orchestrator.degradation.early_warning), e.g. {"k": 6}
    early_warning: EarlyWarningSettings = Field(default_factory=EarlyWarningSettings)
    #: a heartbeat monitor (folded into ``check`` as kind push; see PushSection)
    push: PushSection | None = None

    @model_validator(mode="before")
    @classmethod
    def _url_into_check(cls, data: Any) -> Any:
        # `url:` beside a `check:` section (headers...) is the check's URL, as if written inside it.
        if isinstance(data, dict) and isinstance(data.get("check"), dict) and data.get("url") is not None:
            if data["check"].get("url") is None:
                data = {**data, "check": {**data["check"], "url": data["url"]}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _timeout_follows_interval(cls, data: Any) -> Any:
        if isinstance(data, dict) and _is_push(data):  # its own defaults (core.defaults)
            data = {"interval": PUSH_INTERVAL_S, "failure_threshold": PUSH_FAILURE_THRESHOLD,
                    "success_threshold": PUSH_SUCCESS_THRESHOLD,
                    **{k: v for k, v in data.items() if v is not None or k not in (
                        "interval", "failure_threshold", "success_threshold")}}
        if isinstance(data, dict) and data.get("timeout") is None:
            try:
                interval = _duration(data.get("interval", DEFAULT_INTERVAL_S))
            except (TypeError, ValueError):
                return data  # the interval's own error is the one to report
            data = {**data, "timeout": default_timeout_s(interval)}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> float:
        return _at_least(_duration(value), MIN_INTERVAL_S)

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float:
        return _at_least(_duration(value), MIN_TIMEOUT_S)

    @field_validator("retry_interval", "max_probe_interval", mode="before")
    @classmethod
    def _optional_duration(cls, value: Any) -> float | None:
        return None if value is None else _duration(value)

    @field_validator("plan")
    @classmethod
    def _plan_name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "plan name")

    @field_validator("depends_on", mode="before")
    @classmethod
    def _deps(cls, value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else list(value or [])
        for dep in items:
            check_name(dep, "dependency name")
        if len(set(items)) != len(items):
            raise ValueError("a dependency is listed twice")
        return tuple(items)

    @field_validator("expect_status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> list[str] | None:
        if value is None:
            return None
        items = value if isinstance(value, (list, tuple)) else [value]
        parse_status_set(list(items))  # validates
        return [str(item) for item in items]

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> dict[str, str]:
        return _string_map(value, "label")

    @field_validator("vars", mode="before")
    @classmethod
    def _vars(cls, value: Any) -> dict[str, str]:
        return _references_ok(_string_map(value, "var"))

    @field_validator("secret_vars", mode="before")
    @classmethod
    def _secret_vars(cls, value: Any) -> dict[str, str]:
        return _references_ok(_string_map(value, "secret var"))

    @field_validator("early_warning", mode="before")
    @classmethod
    def _early_warning(cls, value: Any) -> EarlyWarningSettings:
        return settings_from(value)  # "k: must be > 1", reported as early_warning.k

    @field_validator("backup_url")
    @classmethod
    def _backup(cls, value: str | None) -> str | None:
        if value is not None:
            validate_http_url(check_references(value))  # same URL rules as checks
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ComponentSpec:
        if self.timeout >= self.interval:
            raise ValueError(f"timeout: {self.timeout:g}s must be shorter than interval {self.interval:g}s")
        if self.retry_interval is not None and self.retry_interval > self.interval:
            raise ValueError("retry_interval: must not be longer than interval")
        if self.max_probe_interval is not None and self.max_probe_interval < self.interval:
            raise ValueError(f"max_probe_interval: {self.max_probe_interval:g}s must not be shorter than interval "
                             f"{self.interval:g}s")
        both = sorted(set(self.vars) & set(self.secret_vars))
        if both:
            raise ValueError(f"secret_vars: {both[0]!r} is also a plain var (give it once)")
        if self.name in self.depends_on:
            raise ValueError("depends_on: a component cannot depend on itself")
        if self.push is not None and (self.check is not None or self.url is not None):
            raise ValueError("push: a push monitor has no url or check section")
        if self.check is None and self.url is None and self.push is None:
            raise ValueError("url: required (or a check section, or push)")
        if self.check is not None and self.url is not None and self.check.url not in (None, self.url):
            raise ValueError("url: disagrees with check.url")
        lo, hi = self.min_replicas, self.max_replicas
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_replicas: greater than max_replicas")
        try:
            _check_spec_references(self.check_spec())
            _check_tls_ca(self.check_spec())
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or ("url" if self.url else "push" if self.push else "check")
            if self.push is not None and where != "push":
                where = "push." + where.removesuffix("_s")
            raise ValueError(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None
        return self

    def check_spec(self) -> CheckSpec:
        """The effective check: the ``check`` section, with ``url``/``expect_status`` folded in."""
        if self.push is not None:
            return CheckSpec(**self.push.check())
        base = self.check.model_dump(exclude_unset=True) if self.check else {}
        if self.url is not None:
            base["url"] = self.url
        if self.expect_status is not None:
            base["expect_status"] = self.expect_status
        return CheckSpec(**base)

    def definition(self) -> dict[str, Any]:
        """The definition as stored and compared: plain JSON types, defaults filled in."""
        return {
            "name": self.name,
            "check": self.check_spec().model_dump(mode="json", exclude_defaults=True),
            "interval_s": self.interval,
            "timeout_s": self.timeout,
            "failure_threshold": self.failure_threshold,
            "success_threshold": self.success_threshold,
            "retry_interval_s": self.retry_interval,
            "max_probe_interval_s": self.max_probe_interval,
            "plan": self.plan,
            "depends_on": sorted(self.depends_on),
            "criticality": self.criticality.value,
            "labels": dict(sorted(self.labels.items())),
            "vars": dict(sorted(self.vars.items())),
            "secret_vars": dict(sorted(self.secret_vars.items())),
            "backup_url": self.backup_url,
            "replicas": self.replicas,
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "early_warning": self.early_warning.overrides(),
        }
