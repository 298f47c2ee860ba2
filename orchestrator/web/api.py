"""The JSON API under ``/api/v1``: the CLI's ``--json`` shapes, lists in a pagination envelope.

Lists answer ``{"items": [...], "limit": N, "next_cursor": "..." | null}``; pass ``cursor`` back to get
the next page. Each route is one :func:`orchestrator.web.operations.operation`: its request models
(``web.apimodels``) validate it and its response models (``web.responses``) document it; writes pass
:func:`orchestrator.web.guard.write` and call :mod:`orchestrator.web.actions`. Form posts from the page
(with a ``next`` field) are answered with a redirect back to it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, redirect, render_template, request

from orchestrator.accounts import service as accounts
from orchestrator.accounts.roles import Role
from orchestrator.components.views import ComponentFilter, component_views, instance_views, transition_views
from orchestrator.core.errors import InputError
from orchestrator.incidents import operator
from orchestrator.web import actions, responses
from orchestrator.web.apimodels import (
    ComponentQuery,
    Empty,
    IncidentPath,
    IncidentQuery,
    MaintenanceBody,
    MaintenanceWindowBody,
    NamePath,
    NoteBody,
    Paging,
    PauseBody,
    RecoverBody,
    ResolveBody,
    SilenceBody,
    UpdateBody,
    WindowPath,
    seconds,
)
from orchestrator.web.guard import principal, remote_address
from orchestrator.web.openapi import openapi_document
from orchestrator.web.operations import operation
from orchestrator.web.redirects import local_path
from orchestrator.web.state import app_state
from orchestrator.web.summary import status_summary

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")


# -- pagination ------------------------------------------------------------------------------------
def _id_cursor(raw: str | None) -> int | None:
    """Lists newest first continue below the id a ``next_cursor`` names (validated by ``IdCursor``)."""
    return None if raw is None else int(raw)


def page(items: list[dict[str, Any]], limit: int, key: str) -> dict[str, Any]:
    """The envelope of one page fetched with ``limit + 1`` rows (the extra one says there is more); the
    cursor is the last item's key (a name, or an id) as text."""
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "limit": limit, "next_cursor": str(items[-1][key]) if more else None}


def component_filter(states: list[str], labels: list[str]) -> ComponentFilter:
    """The overview's filter: ``state`` values and ``label`` ``key=value`` pairs."""
    pairs = []
    for raw in labels:
        key, sep, value = raw.partition("=")
        if not sep or not key:
            raise InputError(f"expected key=value, got {raw!r}", field="label")
        pairs.append((key, value))
    return ComponentFilter(states=tuple(states), labels=tuple(pairs))


# -- reads -----------------------------------------------------------------------------------------
@blueprint.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


@operation(blueprint, "GET", "/components", summary="Components by name", query=ComponentQuery,
           responses={200: responses.ComponentPage}, role=Role.VIEWER)
def list_components(query: ComponentQuery):
    source = app_state().source
    where = component_filter([s.value for s in query.state], query.label)
    with source.db.read() as session:
        items = component_views(session, source.clock.now(), where=where, after=query.cursor,
                                limit=query.limit + 1)
    return jsonify(page(items, query.limit, "name"))


@operation(blueprint, "GET", "/components/{name}", summary="One component", path_model=NamePath,
           responses={200: responses.Component}, role=Role.VIEWER)
def show_component(path: NamePath):
    source = app_state().source
    with source.db.read() as session:
        return jsonify(component_views(session, source.clock.now(), path.name)[0])


@operation(blueprint, "GET", "/components/{name}/transitions", summary="A component's state transitions, newest first",
           path_model=NamePath, query=Paging, responses={200: responses.TransitionPage}, role=Role.VIEWER)
def component_transitions(path: NamePath, query: Paging):
    source = app_state().source
    with source.db.read() as session:
        items = transition_views(session, path.name, before=_id_cursor(query.cursor), limit=query.limit + 1)
    return jsonify(page(items, query.limit, "id"))


@operation(blueprint, "GET", "/incidents", summary="Incidents, newest first", query=IncidentQuery,
           responses={200: responses.IncidentPage}, role=Role.VIEWER)
def list_incidents(query: IncidentQuery):
    source = app_state().source
    items = operator.list_incidents(source.db, component=query.component,
                                    status=query.status.value if query.status else None,
                                    since_s=seconds(query.since), clock=source.clock,
                                    before=_id_cursor(query.cursor), limit=query.limit + 1)
    return jsonify(page(items, query.limit, "id"))


@operation(blueprint, "GET", "/incidents/{id}", summary="One incident with its journal, notifications and notes",
           path_model=IncidentPath, responses={200: responses.IncidentDetail}, role=Role.VIEWER)
def show_incident(path: IncidentPath):
    return jsonify(operator.show_incident(app_state().source.db, path.id))


@operation(blueprint, "GET", "/status", summary="Components by state, open incidents by status, live daemons",
           responses={200: responses.Status}, role=Role.VIEWER)
def status():
    return jsonify(status_summary(app_state().source))


@operation(blueprint, "GET", "/instances", summary="Daemon instances not recorded as stopped",
           responses={200: responses.InstanceList}, role=Role.VIEWER)
def instances():
    source = app_state().source
    with source.db.read() as session:
        return jsonify({"items": instance_views(session, source.clock.now())})


@operation(blueprint, "GET", "/users", summary="Users and their roles (admin)", responses={200: responses.UserList},
           role=Role.ADMIN)
def users():
    """Every user, their role and how many of their tokens still work; never a password or token."""
    source = app_state().source
    return jsonify({"items": accounts.list_users(source.db, source.clock)})


@operation(blueprint, "GET", "/me", summary="Who this request acts as (a token's or a login's user)",
           responses={200: responses.Me}, role=Role.VIEWER, identify=True)
def me():
    """The user behind the token or login (401 without one); any role may ask."""
    who = principal()
    assert who is not None, "identify=True: the operation answered 401 without one"
    return jsonify({"name": who.name, "role": who.role.value, "token_id": who.token_id, "scope": who.scope.value})


# -- writes ----------------------------------------------------------------------------------------
def _form() -> bool:
    return not request.is_json and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")


def _done(data: Any, status: int = 200):
    """JSON for scripts; a redirect back for the page's forms (their ``next`` is a local path)."""
    if _form() and request.form.get("next"):
        return redirect(local_path(request.form.get("next")), code=303)
    return jsonify(data), status


def _actor():
    return actions.api_actor(principal(), remote_address(), request.method, request.path)


@operation(blueprint, "POST", "/components/{name}/pause", summary="Pause: checks go on, no incidents, no actions",
           path_model=NamePath, body=PauseBody, responses={200: responses.Component}, write=True,
           role=Role.OPERATOR)
def pause(path: NamePath, body: PauseBody):
    return _done(actions.pause(app_state().source, _actor(), path.name, seconds(body.for_), body.reason))


@operation(blueprint, "POST", "/components/{name}/resume", summary="Undo pause", path_model=NamePath, body=Empty,
           responses={200: responses.Component}, write=True,
           role=Role.OPERATOR)
def resume(path: NamePath, body: Empty):
    return _done(actions.resume(app_state().source, _actor(), path.name))


@operation(blueprint, "POST", "/components/{name}/maintenance",
           summary="Start (for) or end (end: true) a maintenance window", path_model=NamePath,
           body=MaintenanceBody, responses={200: responses.Component}, write=True,
           role=Role.OPERATOR)
def maintenance(path: NamePath, body: MaintenanceBody):
    return _done(actions.maintenance(app_state().source, _actor(), path.name, seconds(body.for_), body.end))


@operation(blueprint, "POST", "/components/{name}/recover",
           summary="Start the component's recovery plan now (runs in the background); dry_run: only render it",
           path_model=NamePath, body=RecoverBody,
           responses={202: responses.RecoveryStarted, 200: responses.RecoveryDryRun}, write=True,
           role=Role.OPERATOR)
def recover(path: NamePath, body: RecoverBody):
    """Start the plan now (202, in the background), or with dry_run render its steps (200; nothing is
    run, recorded or sent)."""
    answer, code = actions.recover(app_state().source, _actor(), path.name, body.plan, body.dry_run)
    if body.dry_run and _form():  # the page's button: show the steps, not a redirect
        return render_template("dry_run.html.j2", name=path.name, steps=answer["steps"],
                               back=local_path(request.form.get("next")))
    return _done(answer, code)


@operation(blueprint, "POST", "/incidents/{id}/ack", summary="Acknowledge (a human has seen it)",
           path_model=IncidentPath, body=Empty, responses={200: responses.Incident}, write=True,
           role=Role.OPERATOR)
def ack(path: IncidentPath, body: Empty):
    return _done(actions.ack(app_state().source, _actor(), path.id))


@operation(blueprint, "POST", "/incidents/{id}/approve", summary="Approve the step it waits for",
           path_model=IncidentPath, body=Empty, responses={200: responses.Incident}, write=True,
           role=Role.OPERATOR)
def approve(path: IncidentPath, body: Empty):
    return _done(actions.approve(app_state().source, _actor(), path.id))


@operation(blueprint, "POST", "/incidents/{id}/resolve",
           summary="Close it by hand (resolution manual), with a reason for its timeline",
           path_model=IncidentPath, body=ResolveBody, responses={200: responses.Incident}, write=True,
           role=Role.OPERATOR)
def resolve(path: IncidentPath, body: ResolveBody):
    return _done(actions.resolve(app_state().source, _actor(), path.id, body.reason))


@operation(blueprint, "POST", "/incidents/{id}/note", summary="Add a note to its timeline",
           path_model=IncidentPath, body=NoteBody, responses={201: responses.Note}, write=True,
           role=Role.OPERATOR)
def note(path: IncidentPath, body: NoteBody):
    return _done(actions.note(app_state().source, _actor(), path.id, body.text), 201)


# -- maintenance windows and silences (docs/maintenance.md) -------------------------------------------
@operation(blueprint, "GET", "/maintenance", summary="Maintenance windows, with when each is open next",
           responses={200: responses.MaintenanceWindowList}, role=Role.VIEWER)
def list_maintenance():
    return jsonify({"items": actions.list_windows(app_state().source, "maintenance")})


@operation(blueprint, "POST", "/maintenance",
           summary="Add a recurring (cron, duration, tz) or one-off (for, start_in) maintenance window",
           body=MaintenanceWindowBody, responses={201: responses.MaintenanceWindow}, write=True, role=Role.OPERATOR)
def add_maintenance(body: MaintenanceWindowBody):
    return _done(actions.add_window(app_state().source, _actor(), "maintenance", seconds(body.start_in),
                                    selector=body.selector, cron=body.cron, duration_s=seconds(body.duration),
                                    tz=body.tz, for_s=seconds(body.for_), reason=body.reason), 201)


@operation(blueprint, "DELETE", "/maintenance/{id}", summary="Remove a maintenance window", path_model=WindowPath,
           responses={200: responses.MaintenanceWindow}, write=True, role=Role.OPERATOR)
def remove_maintenance(path: WindowPath):
    return _done(actions.remove_window(app_state().source, _actor(), "maintenance", path.id))


@operation(blueprint, "GET", "/silences", summary="Silences (notifications muted, automation carries on)",
           responses={200: responses.MaintenanceWindowList}, role=Role.VIEWER)
def list_silences():
    return jsonify({"items": actions.list_windows(app_state().source, "silence")})


@operation(blueprint, "POST", "/silences", summary="Mute the notifications of the components a selector picks",
           body=SilenceBody, responses={201: responses.MaintenanceWindow}, write=True, role=Role.OPERATOR)
def add_silence(body: SilenceBody):
    return _done(actions.add_window(app_state().source, _actor(), "silence", seconds(body.start_in),
                                    selector=body.selector, for_s=seconds(body.for_), reason=body.reason), 201)


@operation(blueprint, "DELETE", "/silences/{id}", summary="Remove a silence", path_model=WindowPath,
           responses={200: responses.MaintenanceWindow}, write=True, role=Role.OPERATOR)
def remove_silence(path: WindowPath):
    return _done(actions.remove_window(app_state().source, _actor(), "silence", path.id))
@operation(blueprint, "POST", "/incidents/{id}/updates",
           summary="Post a human-written update (public: on status pages and their feeds)",
           path_model=IncidentPath, body=UpdateBody, responses={201: responses.IncidentUpdate}, write=True, role=Role.OPERATOR)
def post_update(path: IncidentPath, body: UpdateBody):
    return _done(actions.incident_update(app_state().source, _actor(), path.id, body.message, body.state,
                                         body.public), 201)
