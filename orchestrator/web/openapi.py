"""The OpenAPI 3.1 document of ``/api/v1`` (served at ``/api/v1/openapi.json``), generated.

Built from :data:`orchestrator.web.operations.OPERATIONS` and pydantic's own JSON Schema of their request
models (:mod:`web.apimodels`) and response models (:mod:`web.responses`): what the document says a
request may be is what the server's validator takes, and what it says an answer is, is the model the
tests check answers against. Nothing here is written by hand except the error statuses.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from orchestrator import __version__
from orchestrator.accounts.roles import Role
from orchestrator.web import responses
from orchestrator.web.operations import OPERATIONS, Operation

REF = "#/components/schemas/{model}"

#: what every operation may answer besides its success (each in the Error shape)
ERRORS = {400: "Bad input (the field is named)", 404: "Not found",
          405: "Method not allowed (the Allow header lists the allowed ones)",
          503: "The database is unreachable"}
#: and what a write may answer besides
WRITE_ERRORS = {401: "Missing or wrong token, or no login",
                403: "The role (or a read-scope token) does not allow it, or the CSRF token is missing (cookie login)",
                409: "Conflict with the current state",
                429: "Too many wrong tokens from this address: wait Retry-After seconds"}


def _schemas() -> tuple[dict[tuple[type[BaseModel], str], dict[str, Any]], dict[str, Any]]:
    models: list[tuple[type[BaseModel], str]] = [(responses.Error, "serialization")]
    for op in OPERATIONS:
        if op.body_model is not None:
            models.append((op.body_model, "validation"))
        models.extend((m, "serialization") for m in op.responses.values() if m is not None)
    refs, defs = models_json_schema(list(dict.fromkeys(models)), ref_template=REF)
    return refs, defs.get("$defs", {})


def _parameters(model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF)
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        alternatives = prop.get("anyOf", [])
        if len(alternatives) == 2 and {"type": "null"} in alternatives:  # a parameter is absent, never null
            prop = {**[a for a in alternatives if a != {"type": "null"}][0],
                    **{k: v for k, v in prop.items() if k not in ("anyOf", "default")}}
            description = description or prop.pop("description", "")
        param = {"name": name, "in": where, "required": where == "path" or name in schema.get("required", ()),
                 "description": description, "schema": prop}
        if prop.get("type") == "array":
            param.update(style="form", explode=True)
        out.append(param)
    return out


def _json(ref: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": ref}}


def _needs_body(model: type[BaseModel]) -> bool:
    """Whether the body may be left out: exactly when ``{}`` is valid (a missing body reads as ``{}``)."""
    try:
        model.model_validate({})
    except ValidationError:
        return True
    return False


def _operation(op: Operation, refs: dict[tuple[type[BaseModel], str], dict[str, Any]]) -> dict[str, Any]:
    error = refs[(responses.Error, "serialization")]
    answers: dict[str, Any] = {}
    for status, model in op.responses.items():
        answers[str(status)] = {"description": HTTPStatus(status).phrase}
        if model is not None:
            answers[str(status)]["content"] = _json(refs[(model, "serialization")])
    guarded = op.guarded
    for status, text in {**ERRORS, **(WRITE_ERRORS if guarded else {})}.items():
        answers.setdefault(str(status), {"description": text, "content": _json(error)})
    out: dict[str, Any] = {"summary": op.summary, "operationId": f"{op.method.lower()}{op.path}",
                           "parameters": [*_parameters(op.path_model, "path"), *_parameters(op.query_model, "query"),
                                          *op.headers],
                           "responses": answers, "x-required-role": op.needed_role.value}
    needs = (f"Requires role {op.needed_role.value}" + (" (a write-scope token)." if op.write else ".")
             if guarded else f"Open to anyone who can reach the server (role {Role.VIEWER.value}).")
    out["description"] = f"{op.description}\n\n{needs}" if op.description else needs
    if op.body_model is not None:
        needed = _needs_body(op.body_model)
        out["requestBody"] = {"required": needed, "content": _json(refs[(op.body_model, "validation")])}
    if guarded:
        out["security"] = [{"bearer": []}]
    return out


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    from orchestrator.web import api, degradation_api  # noqa: F401  (their operations register on import)

    refs, schemas = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
        for model in (op.path_model, op.query_model):  # enums a parameter refers to
            if model is not None:
                schemas.update(model.model_json_schema(ref_template=REF).get("$defs", {}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "orchestrator API", "version": __version__,
                 "description": "The same item shapes as the CLI's --json (docs/cli.md). Lists are paged: "
                                "pass next_cursor back as cursor. Writes need Authorization: Bearer <token> (a user's "
                                "token: `orchestrator tokens create`) and the role each operation names in "
                                "x-required-role (viewer < operator < admin). "
                                "Every error answers {\"error\": {\"message\", \"field\", \"status\"}}."},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
