"""Load and validate recovery_strategies.json into typed, immutable objects — all of it, or nothing.

Layers of step settings, lowest first: built-in defaults, environment overrides (``RETRY_MAX_ATTEMPTS``,
``RECOVERY_TIMEOUT``, ``CIRCUIT_BREAKER_THRESHOLD``), the file's ``defaults``, the step itself.
Every error is a PlanError whose ``field`` is the JSON path (``plans.web.steps[1].params.command``).
docs/recovery_strategies.md documents each field.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from orchestrator.durations import parse_duration
from orchestrator.errors import NotFoundError, PlanError
from orchestrator.notify_send import AppriseUrl, Webhook
from orchestrator.strategy import Strategy, load_strategy

#: Seconds, written as "500ms", "10s", "5m", "1h", "2d" or a number.
Duration = Annotated[float, BeforeValidator(parse_duration)]
Positive = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
#: Incident events a notification can be routed for.
EVENTS = ("opened", "reopened", "recovering", "step_failed", "awaiting_approval", "blocked", "escalated",
          "resolved")
#: Seconds an automatic run waits before its first decision (``limits.settle``), so failures that arrive
#: one check apart are judged together by the blast-radius and dependency guards.
DEFAULT_SETTLE_S = 2.0
#: Step settings that ``defaults`` may set for every step.
STEP_SETTINGS = ("attempts", "backoff", "timeout", "verify", "approval")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Backoff(_Model):
    """Delay before retry n: a random value in [0, min(cap, base * 2**(n-1))] ("full jitter")."""

    base_s: Duration = Field(1.0, alias="base")
    cap_s: Duration = Field(60.0, alias="cap")

    @model_validator(mode="after")
    def _order(self) -> Backoff:
        if self.cap_s < self.base_s:
            raise ValueError("cap must be at least base")
        return self


class Verify(_Model):
    """After an action: check every ``interval`` until ``successes`` passes in a row, or ``deadline``."""

    interval_s: Positive = Field(1.0, alias="interval")
    successes: int = Field(2, ge=1, le=100)
    deadline_s: Positive = Field(30.0, alias="deadline")


class Approval(_Model):
    """Ask a human (``incidents approve ID``) before the step runs."""

    required: bool = False
    timeout_s: Positive = Field(900.0, alias="timeout")
    on_timeout: Literal["escalate", "proceed"] = "escalate"


class Step(_Model):
    """One step of a plan: a strategy, its params and how the executor runs it."""

    strategy: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None
    attempts: int = Field(3, ge=1, le=100)
    backoff: Backoff = Field(default_factory=Backoff)
    timeout_s: Positive = Field(60.0, alias="timeout")
    verify: Verify = Field(default_factory=Verify)
    approval: Approval = Field(default_factory=Approval)
    _strategy: Strategy | None = PrivateAttr(default=None)

    @property
    def label(self) -> str:
        """``name`` if given, else the strategy name."""
        return self.name or self.strategy

    def make_strategy(self) -> Strategy:
        """The strategy instance with params validated at load."""
        assert self._strategy is not None, "steps are built by parse_plans"
        return self._strategy


class Budget(_Model):
    """At most ``max_actions`` recovery actions per component within ``window``; then escalate."""

    max_actions: int = Field(5, ge=1)
    window_s: Positive = Field(3600.0, alias="window")


class Plan(_Model):
    steps: list[Step] = Field(min_length=1)
    budget: Budget = Field(default_factory=Budget)
    description: str = ""


class Breaker(_Model):
    """Recovery breaker per component: opens after ``threshold`` failed recoveries in a row."""

    threshold: int = Field(3, ge=1)
    open_base_s: Positive = Field(300.0, alias="open_base")
    open_cap_s: Positive = Field(3600.0, alias="open_cap")


class Limits(_Model):
    max_concurrent_recoveries: int = Field(4, ge=1)
    #: Above this fraction of components down at once, act on none (likely the network or us).
    max_unhealthy_fraction: float = Field(0.5, gt=0, le=1)
    #: The fraction rule applies only when at least this many components are registered.
    min_components: int = Field(4, ge=1)
    #: Wait before an automatic run's first decision; shorter reacts sooner, but the guards then see
    #: less of a fleet-wide failure (see docs/recovery_strategies.md#limits).
    settle_s: Duration = Field(DEFAULT_SETTLE_S, alias="settle", ge=0, le=300)
    breaker: Breaker = Field(default_factory=Breaker)


class Notifications(_Model):
    urls: list[AppriseUrl] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)
    #: Events for one component within this window go out as one message.
    group_window_s: Duration = Field(30.0, alias="group_window")
    events: list[Literal[EVENTS]] = Field(default_factory=lambda: ["opened", "escalated", "resolved"])


class StepDefaults(_Model):
    """Only to validate the ``defaults`` section; its values are merged into each step before parsing."""

    attempts: int | None = Field(None, ge=1, le=100)
    backoff: Backoff | None = None
    timeout: Positive | None = None
    verify: Verify | None = None
    approval: Approval | None = None


class PlanSet(_Model):
    """The whole validated file."""

    version: Literal[1]
    defaults: StepDefaults = Field(default_factory=StepDefaults)
    limits: Limits = Field(default_factory=Limits)
    notifications: Notifications = Field(default_factory=Notifications)
    plans: dict[str, Plan]
    _source: str = PrivateAttr(default="")

    @property
    def source(self) -> str:
        """Where the file was read from."""
        return self._source

    def get(self, name: str) -> Plan:
        """The plan called ``name``; NotFoundError listing the plan names otherwise."""
        if name not in self.plans:
            raise NotFoundError(f"no plan named {name!r} in {self._source or 'the plan file'}; "
                                f"plans: {', '.join(sorted(self.plans)) or 'none'}")
        return self.plans[name]


def _merge(low: Any, high: Any) -> Any:
    """``high`` over ``low``, recursing into objects so ``verify: {successes: 3}`` keeps other defaults."""
    if isinstance(low, dict) and isinstance(high, dict):
        return {**low, **{k: _merge(low.get(k), v) for k, v in high.items()}}
    return high


def _with_defaults(data: dict[str, Any], env_layer: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with the env and ``defaults`` layers written into every step (shape errors are
    left for validation to report)."""
    data = copy.deepcopy(data)
    file_defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    step_layer = _merge(env_layer["step"], {k: v for k, v in file_defaults.items() if k in STEP_SETTINGS})
    for plan in (data.get("plans") or {}).values() if isinstance(data.get("plans"), dict) else ():
        steps = plan.get("steps") if isinstance(plan, dict) else None
        for i, step in enumerate(steps if isinstance(steps, list) else []):
            if isinstance(step, dict):
                steps[i] = _merge(step_layer, step)
    limits = data.setdefault("limits", {})
    if isinstance(limits, dict) and isinstance(limits.setdefault("breaker", {}), dict):
        limits["breaker"] = _merge(env_layer["breaker"], limits["breaker"])
    return data


def parse_plans(data: Any, source: str, env: Mapping[str, str] | None = None) -> PlanSet:
    """Validate already-decoded JSON; build every step's strategy so bad params fail here."""
    if not isinstance(data, dict):
        raise PlanError(f"expected a JSON object at the top level ({source})", field="$")
    prepared = _with_defaults(data, env_defaults(os.environ if env is None else env))
    try:
        plan_set = PlanSet.model_validate(prepared)
    except ValidationError as exc:
        raise plan_error_from_validation(exc, prepared, PlanSet, "", source) from None
    for plan_name, plan in plan_set.plans.items():
        for i, step in enumerate(plan.steps):
            path = f"{_key_path('plans', plan_name)}.steps[{i}]"
            try:
                cls = load_strategy(step.strategy)
            except NotFoundError as exc:
                raise PlanError(f"{exc} ({source})", field=f"{path}.strategy") from None
            try:
                step._strategy = cls(cls.Params.model_validate(step.params))
            except ValidationError as exc:
                raise plan_error_from_validation(exc, step.params, cls.Params, f"{path}.params", source) from None
    plan_set._source = source
    return plan_set


def _key_path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if key.replace("_", "").replace("-", "").isalnum() else f"{prefix}[{json.dumps(key)}]"


def load_plans(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> PlanSet:
    """Read and validate the plan file at ``path``; PlanError (with line/column for bad JSON) otherwise."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read plan file {source}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"invalid JSON in {source} at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    return parse_plans(data, source, env)


# --- environment layer -------------------------------------------------------------------------------


def _env_int(env: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise PlanError(f"environment variable {name} must be a whole number from {low} to {high}, "
                        f"got {raw!r}", field=name)
    return int(raw)


def env_defaults(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The defaults the environment sets: {"step": {...}, "breaker": {...}}; PlanError names a bad one."""
    step: dict[str, Any] = {}
    breaker: dict[str, Any] = {}
    if (attempts := _env_int(env, "RETRY_MAX_ATTEMPTS", 1, 100)) is not None:
        step["attempts"] = attempts
    if (threshold := _env_int(env, "CIRCUIT_BREAKER_THRESHOLD", 1, 1000)) is not None:
        breaker["threshold"] = threshold
    if raw := env.get("RECOVERY_TIMEOUT", "").strip():
        try:
            if parse_duration(raw) <= 0:
                raise ValueError("must be greater than 0")
        except ValueError as exc:
            raise PlanError(f"environment variable RECOVERY_TIMEOUT: {exc}", field="RECOVERY_TIMEOUT") from None
        step["timeout"] = raw
    return {"step": step, "breaker": breaker}


# --- turning pydantic errors into one line with a JSON path ------------------------------------------


def _json_path(loc: list[str | int]) -> str:
    out = ""
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else _key_path(out, part)
    return out.lstrip(".")


def _real_loc(loc: tuple[Any, ...], data: Any) -> list[str | int]:
    """Keep the parts of a pydantic ``loc`` that index the input (dropping union tags like 'list[str]')."""
    real: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(data, dict) and part in data or isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif i == len(loc) - 1 and isinstance(data, dict) and isinstance(part, str):
            pass  # a missing or unknown key: name it
        else:
            continue
        real.append(part)
    return real


def _unwrap(ann: Any) -> Any:
    while True:
        if get_origin(ann) is Annotated:
            ann = get_args(ann)[0]
        elif get_origin(ann) in (Union, types.UnionType):
            rest = [a for a in get_args(ann) if a is not type(None)]
            if len(rest) != 1:
                return ann
            ann = rest[0]
        else:
            return ann


def _annotation_at(model: type[BaseModel], loc: list[str | int]) -> Any:
    """The declared type at ``loc`` inside ``model``, or None when it cannot be followed."""
    ann: Any = model
    for part in loc:
        ann = _unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            fields = {(f.alias or n): f for n, f in ann.model_fields.items()}
            if part not in fields:
                return None
            ann = fields[part].annotation
        elif get_origin(ann) is list and isinstance(part, int):
            ann = get_args(ann)[0]
        elif get_origin(ann) is dict:
            ann = get_args(ann)[1]
        else:
            return None
    return _unwrap(ann)


def _describe(ann: Any) -> str | None:
    plain = {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
             dict: "an object"}
    if ann in plain:
        return plain[ann]
    if isinstance(ann, type) and issubclass(ann, BaseModel) or get_origin(ann) is dict:
        return "an object"
    if get_origin(ann) is list:
        inner = _describe(_unwrap(get_args(ann)[0])) or "a value"
        return "a list of " + {"a string": "strings", "a whole number": "whole numbers",
                               "an object": "objects"}.get(inner, "values")
    return None


def _got(value: Any) -> str:
    for kind, name in ((bool, "true/false"), (str, "a string"), (int, "a number"), (float, "a number"),
                       (list, "a list"), (dict, "an object"), (type(None), "null")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _message(err: Any, model: type[BaseModel], real: list[str | int]) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        parent = _annotation_at(model, real[:-1])
        allowed = [f.alias or n for n, f in parent.model_fields.items()] if isinstance(parent, type) \
            and issubclass(parent, BaseModel) else []
        close = difflib.get_close_matches(str(real[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed) or 'none'}"
        return f"unknown field {real[-1]!r}; {hint}"
    if kind.endswith(("_type", "_parsing")) and (expected := _describe(_annotation_at(model, real))):
        return f"expected {expected}, got {_got(err.get('input'))}"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind.endswith("_type") and get_origin(ann := _annotation_at(model, real)) in (Union, types.UnionType):
        kinds = [d for a in get_args(ann) if a is not type(None) and (d := _describe(_unwrap(a)))]
        return f"expected {', '.join(kinds[:-1])} or {kinds[-1]}, got {_got(err.get('input'))}"
    return msg.replace("Input should", "must").replace("List should", "must").replace(" after validation", "")


def plan_error_from_validation(exc: ValidationError, data: Any, model: type[BaseModel], prefix: str,
                               source: str) -> PlanError:
    """The first error of ``exc`` as a PlanError at its JSON path (``prefix`` + the path inside)."""
    err = exc.errors()[0]
    real = _real_loc(err["loc"], data)
    inner = _json_path(real)
    path = f"{prefix}{'' if not inner or inner.startswith('[') else '.'}{inner}" if prefix else inner
    return PlanError(f"{_message(err, model, real)} ({source})", field=path or "$")
