"""The JSON API under ``/api/v1``: the CLI's ``--json`` shapes, lists in a pagination envelope.

Lists answer ``{"items": [...], "limit": N, "next_cursor": "..." | null}``; pass ``cursor`` back to get
the next page. Writes pass :func:`orchestrator.web.guard.write` and call :mod:`orchestrator.web.actions`.
Form posts from the page (with a ``next`` field) are answered with a redirect back to it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import Blueprint, jsonify, redirect, render_template, request

from orchestrator.components.views import ComponentFilter, component_views, instance_views, transition_views
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import InputError
from orchestrator.incidents import operator
from orchestrator.web import actions
from orchestrator.web.guard import remote_address, write
from orchestrator.web.openapi import openapi_document
from orchestrator.web.state import app_state
from orchestrator.web.summary import status_summary

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


# -- pagination ------------------------------------------------------------------------------------
def _limit() -> int:
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InputError(f"must be a whole number from 1 to {MAX_LIMIT}, got {raw!r}", field="limit")
    return int(raw)


def _cursor() -> Any:
    raw = request.args.get("cursor")
    if not raw:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4)))["k"]
    except (ValueError, KeyError, TypeError):
        raise InputError("not a cursor this API gave out", field="cursor") from None


def encode_cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": key}).encode()).decode().rstrip("=")


def page(items: list[dict[str, Any]], limit: int, key: str) -> dict[str, Any]:
    """The envelope of one page fetched with ``limit + 1`` rows (the extra one says there is more)."""
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "limit": limit, "next_cursor": encode_cursor(items[-1][key]) if more else None}


def component_filter() -> ComponentFilter:
    labels = []
    for raw in request.args.getlist("label"):
        key, sep, value = raw.partition("=")
        if not sep or not key:
            raise InputError(f"expected key=value, got {raw!r}", field="label")
        labels.append((key, value))
    return ComponentFilter(states=tuple(request.args.getlist("state")), labels=tuple(labels))


# -- reads -----------------------------------------------------------------------------------------
@blueprint.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


@blueprint.get("/components")
def list_components():
    source, limit = app_state().source, _limit()
    with source.db.read() as session:
        items = component_views(session, source.clock.now(), where=component_filter(), after=_cursor(),
                                limit=limit + 1)
    return jsonify(page(items, limit, "name"))


@blueprint.get("/components/<name>")
def show_component(name: str):
    source = app_state().source
    with source.db.read() as session:
        return jsonify(component_views(session, source.clock.now(), name)[0])


@blueprint.get("/components/<name>/transitions")
def component_transitions(name: str):
    source, limit = app_state().source, _limit()
    with source.db.read() as session:
        items = transition_views(session, name, before=_int_cursor(), limit=limit + 1)
    return jsonify(page(items, limit, "id"))


def _int_cursor() -> int | None:
    value = _cursor()
    if value is not None and not isinstance(value, int):
        raise InputError("not a cursor this API gave out", field="cursor")
    return value


@blueprint.get("/incidents")
def list_incidents():
    source, limit = app_state().source, _limit()
    since = request.args.get("since")
    try:
        since_s = parse_duration(since) if since else None
    except ValueError as exc:
        raise InputError(str(exc), field="since") from None
    items = operator.list_incidents(source.db, component=request.args.get("component"),
                                    status=request.args.get("status"), since_s=since_s, clock=source.clock,
                                    before=_int_cursor(), limit=limit + 1)
    return jsonify(page(items, limit, "id"))


@blueprint.get("/incidents/<int:incident_id>")
def show_incident(incident_id: int):
    return jsonify(operator.show_incident(app_state().source.db, incident_id))


@blueprint.get("/status")
def status():
    return jsonify(status_summary(app_state().source))


@blueprint.get("/instances")
def instances():
    source = app_state().source
    with source.db.read() as session:
        return jsonify({"items": instance_views(session, source.clock.now())})


# -- writes ----------------------------------------------------------------------------------------
def _body() -> dict[str, Any]:
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise InputError("the body must be a JSON object", field="body")
        return data
    return request.form.to_dict()


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes", "on")


def _done(data: Any, status: int = 200):
    """JSON for scripts; a redirect back for the page's forms (their ``next`` is a local path)."""
    target = request.form.get("next", "")
    if not request.is_json and target.startswith("/") and not target.startswith("//"):
        return redirect(target, code=303)
    return jsonify(data), status


def _actor():
    return actions.api_actor(remote_address(), request.method, request.path)


@blueprint.post("/components/<name>/pause")
@write
def pause(name: str):
    body = _body()
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InputError("must be text", field="reason")
    return _done(actions.pause(app_state().source, _actor(), name, actions.duration_s(body.get("for"), "for"), reason))


@blueprint.post("/components/<name>/resume")
@write
def resume(name: str):
    return _done(actions.resume(app_state().source, _actor(), name))


@blueprint.post("/components/<name>/maintenance")
@write
def maintenance(name: str):
    body = _body()
    return _done(actions.maintenance(app_state().source, _actor(), name, actions.duration_s(body.get("for"), "for"),
                                     _flag(body.get("end", False))))


@blueprint.post("/components/<name>/recover")
@write
def recover(name: str):
    body = _body()
    plan = body.get("plan") or None
    answer, code = actions.recover(app_state().source, _actor(), name, plan, _flag(body.get("dry_run", False)))
    if answer.get("dry_run") and not request.is_json:  # the page's button: show the steps, not a redirect
        back = request.form.get("next", "")
        return render_template("dry_run.html.j2", name=name, steps=answer["steps"],
                               back=back if back.startswith("/") and not back.startswith("//") else "/")
    return _done(answer, code)


@blueprint.post("/incidents/<int:incident_id>/ack")
@write
def ack(incident_id: int):
    return _done(actions.ack(app_state().source, _actor(), incident_id))


@blueprint.post("/incidents/<int:incident_id>/approve")
@write
def approve(incident_id: int):
    return _done(actions.approve(app_state().source, _actor(), incident_id))


@blueprint.post("/incidents/<int:incident_id>/resolve")
@write
def resolve(incident_id: int):
    """Close the incident by hand (``manual``); body ``{"reason": "..."}`` (the logic: incidents.operator)."""
    reason = _body().get("reason")
    if not isinstance(reason, str):
        raise InputError("a manual resolution needs a reason", field="reason")
    source = app_state().source
    return _done(operator.resolve(source.db, incident_id, reason, actor=_actor(), clock=source.clock))


@blueprint.post("/incidents/<int:incident_id>/note")
@write
def note(incident_id: int):
    text = _body().get("text")
    if not isinstance(text, str):
        raise InputError("a note needs some text", field="text")
    return _done(actions.note(app_state().source, _actor(), incident_id, text), 201)
