"""Turn pydantic validation errors into one-line errors that name the field (or the JSON path)."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Callable
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from orchestrator.core.config_text import key_path
from orchestrator.core.errors import InputError, PlanError

_NAMED = re.compile(r"^([a-z_]+(?:\.[a-z_]+)*): (.+)$", re.S)


def error_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """``("components", 2, "interval")`` → ``components[2].interval``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def first_error(exc: ValidationError, *, prefix: str = "", rename: Callable[[str], str] | None = None) -> InputError:
    """The first problem of ``exc`` as an InputError; ``rename`` maps a field path to what the user typed."""
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    # Whole-model validators name their field in the message: "timeout: must be shorter than ...".
    named = _NAMED.match(message)
    if named:
        loc = (*loc, *named.group(1).split("."))
        message = named.group(2)
    path = error_path(loc, prefix) or prefix or "input"
    if rename:
        path = rename(path)
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "missing":
        message = "required"
    return InputError(message.splitlines()[0], field=path)


# --- plan files: one line with a JSON path ------------------------------------------------------------


def _json_path(loc: list[str | int]) -> str:
    out = ""
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else key_path(out, part)
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


def _message(err: ErrorDetails, model: type[BaseModel], real: list[str | int]) -> str:
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
