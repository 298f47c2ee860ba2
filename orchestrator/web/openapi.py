"""The OpenAPI 3.1 document of ``/api/v1`` (served at ``/api/v1/openapi.json``).

Schemas describe the items of :mod:`orchestrator.components.views` and :mod:`orchestrator.incidents.operator`
exactly (``additionalProperties: false``), so the test that validates every response against them fails
when a shape changes without its document.
"""

from __future__ import annotations

from typing import Any

from orchestrator import __version__
from orchestrator.core.states import (
    AttemptStatus,
    ComponentState,
    Criticality,
    DegradationLevel,
    IncidentKind,
    IncidentStatus,
    Resolution,
)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict[str, Any], *, extra: bool = False) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": sorted(properties),
            "additionalProperties": extra}


STR, INT, NUM, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
N_STR, N_INT, N_NUM, N_TIME = _nullable(STR), _nullable(INT), _nullable(NUM), _nullable(TIME)
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _enum(values) -> dict[str, Any]:
    return {"type": "string", "enum": [v.value for v in values]}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Any] = {
    "Component": _obj({
        "name": STR, "kind": {"type": "string", "enum": ["http", "tcp", "command"]}, "url": N_STR,
        "interval_s": NUM, "timeout_s": NUM, "failure_threshold": INT, "success_threshold": INT,
        "retry_interval_s": N_NUM, "max_probe_interval_s": N_NUM, "plan": N_STR, "criticality": _enum(Criticality),
        "labels": STRING_MAP,
        "vars": STRING_MAP, "secret_vars": STRING_MAP, "backup_url": N_STR, "replicas": N_INT, "min_replicas": N_INT, "max_replicas": N_INT,
        "depends_on": {"type": "array", "items": STR},
        "check": {"type": "object", "description": "the check's settings that differ from their defaults"},
        "paused_until": N_TIME, "paused_reason": N_STR, "state": _enum(ComponentState), "state_since": N_TIME,
        "last_check_at": N_TIME, "next_check_at": N_TIME, "last_latency_ms": N_NUM, "last_error": N_STR,
        "open_incident": N_INT, "state_reason": N_STR,
        "early_warning": {"type": "object", "description": "early-warning overrides ({} = defaults; docs/degradation.md)"},
    }),
    "Transition": _obj({"id": INT, "component": STR, "at": TIME, "from_state": STR, "to_state": STR,
                        "reason": N_STR}),
    "Incident": _obj({
        "id": INT, "component": N_STR, "kind": _enum(IncidentKind), "status": _enum(IncidentStatus),
        "resolution": _nullable(_enum(Resolution)), "reason": N_STR, "status_reason": N_STR, "plan": N_STR,
        "blocked_by": N_STR, "next_attempt_at": N_TIME, "last_error": N_STR, "waiting_for": N_STR,
        "waiting_until": N_TIME,
        "opened_at": TIME, "updated_at": TIME, "resolved_at": N_TIME, "escalated_at": N_TIME, "acked_at": N_TIME,
        "acked_by": N_STR, "approved_at": N_TIME, "approved_by": N_STR, "reopen_count": INT,
        "resolved_by_step": N_INT, "flap_episode": N_INT,
    }),
    "JournalRow": _obj({
        "step_index": INT, "attempt": INT, "strategy": STR, "status": _enum(AttemptStatus), "executed": BOOL,
        "owner": N_STR, "claimed_at": TIME, "finished_at": N_TIME, "description": N_STR, "detail": N_STR,
        "skip_reason": N_STR, "output": N_STR, "facts": {"type": "object"}, "verification": {"type": "object"},
    }),
    "Notification": _obj({"event": STR, "channel": STR, "status": STR, "title": N_STR, "error": N_STR,
                          "created_at": TIME}),
    "Note": _obj({"at": TIME, "author": STR, "text": STR}),
    "Instance": _obj({"id": STR, "host": STR, "pid": INT, "version": STR, "started_at": TIME, "heartbeat_at": TIME,
                      "alive": BOOL, "view_reliable": BOOL, "dropped_results": INT,
                      "drops": {"type": "object", "additionalProperties": INT}, "writes_failing_since": N_TIME,
                      "plan_warning": N_STR}),
    "Daemon": _obj({"mode": {"type": "string", "enum": ["daemon", "database"]}, "daemons_alive": INT,
                    "scheduler_running": _nullable(BOOL), "scheduler_stalled_s": N_NUM, "view_reliable": BOOL,
                    "dropped_results": INT, "db_writes_healthy": _nullable(BOOL), "skipped_runs": N_INT,
                    "db_writes_failing_s": N_NUM, "drops": {"type": "object", "additionalProperties": INT},
                    "lateness_p99_ms": N_NUM}),
    "Status": _obj({
        "generated_at": TIME,
        "components": _obj({"total": INT, "by_state": {"type": "object", "additionalProperties": INT}}),
        "incidents": _obj({"open": INT, "by_status": {"type": "object", "additionalProperties": INT}}),
        "instances": {"type": "array", "items": _ref("Instance")}, "daemon": _ref("Daemon"),
    }),
    "Error": _obj({"error": _obj({"message": STR, "field": N_STR, "status": INT})}),
    "Degradation": _obj({
        "scope": STR, "level": _enum(DegradationLevel), "version": INT, "since": TIME,
        "reasons": {"type": "array", "items": STR},
        "features": {"type": "object", "additionalProperties": {"type": ["boolean", "number", "string"]},
                     "description": "application-defined flags at this level (docs/degradation.md)"},
        "ttl_s": NUM, "computed": _enum(DegradationLevel),
        "override": _nullable(_obj({"level": _enum(DegradationLevel), "reason": STR, "actor": STR, "since": TIME,
                                    "expires_at": TIME})),
        "held_until": {**N_TIME, "description": "while level is above computed: when it steps down one level "
                                                "if the rules keep asking for less"},
        "self_protection": _nullable(_obj({"level": _enum(DegradationLevel), "since": TIME, "reason": STR,
                                           "checks": STR})),
    }),
    "RecoveryStarted": _obj({"incident": INT, "status_url": STR}),
    "RecoveryDryRun": _obj({"dry_run": BOOL, "steps": {"type": "array", "items": STR}}),
}
SCHEMAS["IncidentDetail"] = {**SCHEMAS["Incident"], "properties": {
    **SCHEMAS["Incident"]["properties"], "journal": {"type": "array", "items": _ref("JournalRow")},
    "notifications": {"type": "array", "items": _ref("Notification")},
    "notes": {"type": "array", "items": _ref("Note")}}}
SCHEMAS["IncidentDetail"]["required"] = sorted(SCHEMAS["IncidentDetail"]["properties"])
for _item in ("Component", "Incident", "Transition"):
    SCHEMAS[f"{_item}Page"] = _obj({"items": {"type": "array", "items": _ref(_item)}, "limit": INT,
                                    "next_cursor": N_STR})
SCHEMAS["InstanceList"] = _obj({"items": {"type": "array", "items": _ref("Instance")}})


def _param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False,
           many: bool = False) -> dict[str, Any]:
    if many:
        schema = {"type": "array", "items": schema}
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description, **({"explode": True, "style": "form"} if many else {})}


PAGING = [_param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                 "Items per page."),
          _param("cursor", "query", STR, "The next_cursor of the previous page.")]
NAME = _param("name", "path", STR, "Component name.")
INCIDENT_ID = _param("id", "path", INT, "Incident id.")
ERRORS = {str(code): {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
          for code, text in ((400, "Bad input (the field is named)"), (404, "Not found"),
                             (409, "Conflict with the current state"))}
WRITE_ERRORS = {**ERRORS, **{str(code): {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
                             for code, text in ((401, "Missing or wrong token"), (403, "Missing CSRF token (cookie login)"),
                                                (405, "Writes are disabled: no token configured"),
                                                (429, "Too many wrong tokens: wait Retry-After seconds"))}}


def _ok(schema: str, description: str = "OK", code: str = "200") -> dict[str, Any]:
    return {code: {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}}


def _get(summary: str, schema: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params or [], "responses": {**_ok(schema), **ERRORS}}}


def _post(summary: str, schema: str, params: list[dict[str, Any]], body: dict[str, Any] | None = None,
          code: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params, "security": [{"bearer": []}],
                          "responses": {**_ok(schema, code=code), **WRITE_ERRORS}}
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "properties": body, "additionalProperties": False}}}}
    return {"post": op}


def _recover() -> dict[str, Any]:
    """Start the plan now (202, in the background), or with dry_run render its steps (200; nothing is
    run, recorded or sent)."""
    op = _post("Start the component's recovery plan now (runs in the background); dry_run: only render it",
               "RecoveryStarted", [NAME], {"plan": STR, "dry_run": BOOL}, "202")
    op["post"]["responses"].update(_ok("RecoveryDryRun", "The steps a dry run would run"))
    return op


DURATION = {"anyOf": [{"type": "string", "examples": ["30m"]}, {"type": "number"}],
            "description": "A duration: 500ms, 10s, 5m, 1h, 2d, or seconds."}


def _degradation() -> dict[str, Any]:
    """The level for applications: ETag/If-None-Match, and a long-poll with after + wait."""
    op = _get("The published degradation level and feature map (global, or a label-selector scope)",
              "Degradation", [
                  _param("scope", "query", STR, "A configured label-selector scope (team=checkout); default global."),
                  _param("after", "query", INT, "With wait: answer as soon as the version is not this one."),
                  _param("wait", "query", DURATION, "Long-poll up to this long (at most 60s); 304 if unchanged."),
                  _param("If-None-Match", "header", STR, "The ETag of the version held: 304 while unchanged."),
              ])
    op["get"]["responses"]["304"] = {"description": "Not modified: the version named by If-None-Match or after"}
    return op


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    component_filters = [_param("state", "query", _enum(ComponentState), "Only these states.", many=True),
                         _param("label", "query", STR, "Only components with this label (key=value).", many=True)]
    incident_filters = [_param("component", "query", STR, "Only this component's incidents."),
                        _param("status", "query", _enum(IncidentStatus), "Only this status."),
                        _param("since", "query", STR, "Opened within this long (7d).")]
    paths = {
        "/components": _get("Components by name", "ComponentPage", [*component_filters, *PAGING]),
        "/components/{name}": _get("One component", "Component", [NAME]),
        "/components/{name}/transitions": _get("A component's state transitions, newest first",
                                               "TransitionPage", [NAME, *PAGING]),
        "/components/{name}/pause": _post("Pause: checks go on, no incidents, no actions", "Component", [NAME],
                                          {"for": DURATION, "reason": STR}),
        "/components/{name}/resume": _post("Undo pause", "Component", [NAME]),
        "/components/{name}/maintenance": _post("Start (for) or end (end: true) a maintenance window",
                                                "Component", [NAME], {"for": DURATION, "end": BOOL}),
        "/components/{name}/recover": _recover(),
        "/incidents": _get("Incidents, newest first", "IncidentPage", [*incident_filters, *PAGING]),
        "/incidents/{id}": _get("One incident with its journal, notifications and notes", "IncidentDetail",
                                [INCIDENT_ID]),
        "/incidents/{id}/ack": _post("Acknowledge (a human has seen it)", "Incident", [INCIDENT_ID]),
        "/incidents/{id}/approve": _post("Approve the step it waits for", "Incident", [INCIDENT_ID]),
        "/incidents/{id}/note": _post("Add a note to its timeline", "Note", [INCIDENT_ID], {"text": STR}, "201"),
        "/status": _get("Components by state, open incidents by status, live daemons", "Status"),
        "/instances": _get("Daemon instances not recorded as stopped", "InstanceList"),
        "/degradation": _degradation(),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "orchestrator API", "version": __version__,
                 "description": "The same item shapes as the CLI's --json (docs/cli.md). Lists are paged: "
                                "pass next_cursor back as cursor. Writes need Authorization: Bearer <token>."},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
