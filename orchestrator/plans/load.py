"""Load and validate recovery_strategies.json into typed, immutable objects — all of it, or nothing.

Layers of step settings, lowest first: built-in defaults, environment overrides (``RETRY_MAX_ATTEMPTS``,
``RECOVERY_TIMEOUT``, ``CIRCUIT_BREAKER_THRESHOLD``), the file's ``defaults``, the step itself.
Every error is a PlanError whose ``field`` is the JSON path (``plans.web.steps[1].params.command``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from orchestrator.core.config_text import decode_json, key_path, read_capped
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import NotFoundError, PlanError
from orchestrator.core.validation import plan_error_from_validation
from orchestrator.plans.models import STEP_SETTINGS, PlanSet
from orchestrator.plugins.registry import load_strategy

#: A plan file is configuration written by hand: anything larger is a mistake (a 50 MB file took 75 s
#: and 3.8 GB to refuse). Checked before the file is read.
MAX_PLAN_FILE_BYTES = 1024 * 1024


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
    text = read_capped(source, MAX_PLAN_FILE_BYTES, "plan file", PlanError)
    return parse_plans(decode_json(text, source, PlanError), source, env)




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
