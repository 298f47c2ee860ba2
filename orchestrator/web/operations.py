"""One declaration per API operation: its route, its request models, its answers, and whether it writes.

``@operation(blueprint, "POST", "/components/{name}/pause", path=NamePath, body=PauseBody,
responses={200: responses.Component}, write=True, role=Role.OPERATOR)`` registers the Flask route, and
before the function runs: the gate (``web.guard.authorize``: the role the operation declares), then the path, query and body validated by their models (400 naming
the field on the first error). The function gets the validated models as ``path=``, ``query=``, ``body=``.
:func:`orchestrator.web.openapi.openapi_document` is built from the same list, so the document and the
server cannot disagree. Adding an operation is this decorator on one function, nothing else.

``role`` is the least role that may call it; this list is the one table of who may do what (the
document shows it as ``x-required-role``). A write that declares none needs ``admin`` (closed by
default) and fails tests/test_web_roles.py until it says which role it means.

Guarantee kept (bad input is refused, naming the field, and changes nothing; docs/web.md "The schema
is the validator"): a request that does not fit its models is refused before anything acts; a form
post from the page is read with the same model as JSON.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

from flask import Blueprint, request
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from orchestrator.accounts.roles import Role
from orchestrator.core.errors import InputError
from orchestrator.web.guard import authorize

#: form fields of the page's own forms that are not part of any body (web.guard, web.api._done)
FORM_ONLY = frozenset({"csrf_token", "next"})
#: form text for booleans (an HTML form sends text); anything else stays text and is refused
FORM_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class Operation:
    """One method on one path of ``/api/v1``, as the document shows it."""

    method: str
    path: str
    summary: str
    responses: dict[int, type[BaseModel] | None]
    path_model: type[BaseModel] | None = None
    query_model: type[BaseModel] | None = None
    body_model: type[BaseModel] | None = None
    write: bool = False
    description: str = ""
    headers: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    #: the least role that may call it, as declared (None: not declared)
    role: Role | None = None
    #: a read that still needs a credential (it answers about the caller)
    identify: bool = False

    @property
    def needed_role(self) -> Role:
        """The role enforced: the declared one; undeclared, viewer for a read and admin for a write."""
        return self.role or (Role.ADMIN if self.write else Role.VIEWER)

    @property
    def guarded(self) -> bool:
        """Whether it needs a credential: a write, a role above viewer, or a read about the caller."""
        return self.write or self.identify or self.needed_role is not Role.VIEWER


#: every operation, in declaration order (the document lists them in this order)
OPERATIONS: list[Operation] = []


def _flask_rule(path: str) -> str:
    return re.sub(r"\{(\w+)\}", r"<\1>", path)


def operation(blueprint: Blueprint, method: str, path: str, *, summary: str,
              responses: dict[int, type[BaseModel] | None], path_model: type[BaseModel] | None = None,
              query: type[BaseModel] | None = None, body: type[BaseModel] | None = None, write: bool = False,
              headers: tuple[dict[str, Any], ...] = (), role: Role | None = None,
              identify: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn`` as ``method path`` on ``blueprint`` (``path`` relative to its url_prefix)."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        op = Operation(method, path, summary, responses, path_model, query, body, write,
                       (fn.__doc__ or "").strip(), headers, role, identify)
        OPERATIONS.append(op)

        @functools.wraps(fn)
        def view(**path_values: str) -> Any:
            if op.guarded:
                authorize(op.needed_role, op.write)
            kwargs: dict[str, Any] = {}
            if op.path_model is not None:
                kwargs["path"] = validate(op.path_model, path_values)
            if op.query_model is not None:
                kwargs["query"] = validate(op.query_model, query_values(op.query_model))
            elif request.args:
                raise InputError("this operation takes no query parameters", field=next(iter(request.args)))
            if op.body_model is not None:
                kwargs["body"] = validate(op.body_model, body_values(op.body_model), nested=True)
            return fn(**kwargs)

        blueprint.add_url_rule(_flask_rule(path), endpoint=fn.__name__, view_func=view, methods=[method])
        return view

    return decorate


def validate(model: type[BaseModel], values: dict[str, Any], *, nested: bool = False) -> Any:
    """``model`` of ``values``, or InputError naming the first field at fault (``nested``: by its JSON path
    into a body, ``alerts[0].status``; else the parameter's name)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = (_path(error["loc"], values) if nested else str(error["loc"][0])) if error["loc"] else _first_field(model)
        raise InputError(_message(error), field=where) from None


def _path(loc: tuple[Any, ...], values: Any) -> str:
    """A nested field as its JSON path (``alerts[0].labels.component``): the parts of pydantic's location
    that step into the input; what follows a scalar (a union member's tag) is not part of it."""
    out, current = str(loc[0]), values.get(loc[0]) if isinstance(values, dict) else None
    for part in loc[1:]:
        if isinstance(current, dict) and isinstance(part, str):
            out, current = f"{out}.{part}", current.get(part)
        elif isinstance(current, list) and isinstance(part, int):
            out, current = f"{out}[{part}]", current[part] if part < len(current) else None
        else:
            break
    return out


def _first_field(model: type[BaseModel]) -> str | None:
    """The field a rule over the whole model names: its first."""
    for name, info in model.model_fields.items():
        return info.alias or name
    return None


def _message(error: ErrorDetails) -> str:
    if error["type"] == "value_error":
        return str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "string_pattern_mismatch" and "ms|" in str(error.get("ctx", {}).get("pattern", "")):
        return "not a duration (a positive number and a unit: 500ms, 10s, 5m, 1h, 2d)"
    return error["msg"]


def _is_list(model: type[BaseModel], name: str) -> bool:
    info = model.model_fields.get(name)
    return info is not None and get_origin(info.annotation) is list


def query_values(model: type[BaseModel]) -> dict[str, Any]:
    """The query string as the model's input: repeatable fields as lists, others given at most once."""
    values: dict[str, Any] = {}
    for key in request.args:
        given = request.args.getlist(key)
        if _is_list(model, key):
            values[key] = given
        elif len(given) > 1:
            raise InputError("given more than once", field=key)
        else:
            values[key] = given[0]
    return values


def body_values(model: type[BaseModel]) -> dict[str, Any]:
    """The body as a dict: JSON (must be an object), or the page's form (its own fields dropped, blank
    inputs left out, ``true``/``false`` read as booleans); no body is ``{}``."""
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise InputError("the body must be a JSON object", field="body")
        return data
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {key: _form_value(model, key, value) for key, value in request.form.items()
                if key not in FORM_ONLY and value != ""}
    if request.get_data(cache=True):
        raise InputError("send the body as application/json", field="body")
    return {}


def _form_value(model: type[BaseModel], key: str, value: str) -> Any:
    info = next((f for name, f in model.model_fields.items() if (f.alias or name) == key), None)
    if info is not None and bool in (info.annotation, *get_args(info.annotation)):
        return FORM_BOOLEANS.get(value.lower(), value)
    return value
