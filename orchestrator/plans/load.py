"""Load and validate recovery_strategies.json into typed, immutable objects — all of it, or nothing.

Layers of step settings, lowest first: built-in defaults, environment overrides (``RETRY_MAX_ATTEMPTS``,
``RECOVERY_TIMEOUT``, ``CIRCUIT_BREAKER_THRESHOLD``), the file's ``defaults``, the step itself.
Every error is a PlanError whose ``field`` is the JSON path (``plans.web.steps[1].params.command``).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import NotFoundError, PlanError
from orchestrator.plans.models import STEP_SETTINGS, PlanSet
from orchestrator.plans.validation import key_path, plan_error_from_validation
from orchestrator.plugins.registry import load_strategy

#: A plan file is configuration written by hand: anything larger is a mistake (a 50 MB file took 75 s
#: and 3.8 GB to refuse). Checked before the file is read.
MAX_PLAN_FILE_BYTES = 1024 * 1024
#: Deepest nesting of objects and lists (the documented format needs 6).
MAX_DEPTH = 32
#: Longest integer accepted; every count and limit in a plan file is far shorter.
MAX_INT_DIGITS = 15


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
            path = f"{key_path('plans', plan_name)}.steps[{i}]"
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


def load_plans(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> PlanSet:
    """Read and validate the plan file at ``path``; PlanError (with line/column for bad JSON) otherwise."""
    source = os.fspath(path)
    return parse_plans(decode_plan_text(_read_capped(source), source), source, env)


def _read_capped(source: str) -> str:
    """The file's text; refused before reading it whole when larger than MAX_PLAN_FILE_BYTES."""
    limit = f"the plan file limit is {MAX_PLAN_FILE_BYTES // 1024} KiB"
    try:
        with open(source, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_PLAN_FILE_BYTES:
                raise PlanError(f"{source} is {size} bytes: {limit}")
            raw = file.read(MAX_PLAN_FILE_BYTES + 1)  # a pipe or a growing file has no size to trust
    except OSError as exc:
        raise PlanError(f"cannot read plan file {source}: {exc.strerror or exc}") from None
    if len(raw) > MAX_PLAN_FILE_BYTES:
        raise PlanError(f"{source} is larger than {MAX_PLAN_FILE_BYTES} bytes: {limit}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(f"cannot read plan file {source}: not UTF-8 text (byte {exc.start})") from None


def decode_plan_text(text: str, source: str) -> Any:
    """JSON text → plain data, refusing what json.loads would accept silently or choke on: duplicate
    keys (the last would win), nesting deeper than MAX_DEPTH, integers longer than MAX_INT_DIGITS,
    NaN and infinities. Each error is a PlanError naming the JSON path."""
    try:
        data = json.loads(text, object_pairs_hook=_Object, parse_int=_int, parse_constant=_NotFinite,
                          parse_float=_float)
    except json.JSONDecodeError as exc:
        raise PlanError(f"invalid JSON in {source} at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise PlanError(f"nested deeper than {MAX_DEPTH} levels ({source})", field="$") from None
    _check_tree(data, source)
    return data


class _Object(dict):
    """A decoded JSON object that remembers the first key it saw twice."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.duplicate = next((k for k, n in Counter(k for k, _ in pairs).items() if n > 1), None)


class _Refused(str):
    """A number json.loads produced that a plan file must not contain; reported with its path."""

    reason = ""


class _NotFinite(_Refused):
    reason = "must be a finite number"


class _TooLong(_Refused):
    reason = f"number too large (at most {MAX_INT_DIGITS} digits)"


def _int(text: str) -> int | _Refused:
    return _TooLong(text) if len(text.lstrip("-")) > MAX_INT_DIGITS else int(text)


def _float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text)


def _check_tree(data: Any, source: str) -> None:
    """One iterative walk (deep input cannot overflow the stack) over every value, with its path."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            # Name the innermost key, not a chain of thirty [0]s below it.
            raise PlanError(f"nested deeper than {MAX_DEPTH} levels ({source})",
                            field=re.sub(r"(\[\d+\])+$", "", path) or "$")
        if isinstance(value, _Object) and value.duplicate is not None:
            raise PlanError(f"defined twice: a key may appear once in an object, the second would silently "
                            f"replace the first ({source})", field=_child(path, value.duplicate))
        if isinstance(value, dict):
            stack.extend((v, _child(path, k), depth + 1) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, _Refused):
            raise PlanError(f"{value.reason}, got {value[:20]}{'…' if len(value) > 20 else ''} ({source})",
                            field=path or "$")


def _child(path: str, key: str) -> str:
    return key_path(path, key).lstrip(".")


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
