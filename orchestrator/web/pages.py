"""The server-rendered pages: ``/``, ``/components/NAME``, ``/incidents/ID``, ``/report``, login.

Each page's changing part is its own template (``*_body.html.j2``); ``?partial=1`` answers just that
part, which ``static/app.js`` fetches every few seconds and swaps in, so the page updates itself
without a reload (and without any inline script). Buttons are forms posting to the API's write
routes with the CSRF token; they are shown only when writes are enabled.
"""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response, abort, make_response, redirect, render_template, request
from markupsafe import Markup

from orchestrator.accounts import service as accounts
from orchestrator.accounts.roles import Role
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import InputError
from orchestrator.reports.model import build_report
from orchestrator.reports.render import render_html
from orchestrator.web import chartmodels, pagemodels
from orchestrator.web.api import component_filter
from orchestrator.web.apimodels import IncidentPath, NamePath
from orchestrator.web.auth import LEGACY_NAME, SESSION_ABSOLUTE_S, SESSION_COOKIE
from orchestrator.web.guard import (
    check_csrf,
    check_not_throttled,
    csrf_token,
    remote_address,
    session_principal,
    sign_in_possible,
)
from orchestrator.web.operations import validate
from orchestrator.web.redirects import local_path
from orchestrator.web.state import HttpError, app_state

blueprint = Blueprint("pages", __name__)

#: files served from orchestrator/web/static (and the report's stylesheet), with their types
STATIC = {"app.js": "text/javascript", "app.css": "text/css", "status.css": "text/css"}
STATIC_MAX_AGE_S = 300


def _context(**context) -> dict:
    """What every page's templates get besides their model: who is logged in, whether the action buttons
    show (anyone could sign in, and the one logged in, if any, is at least an operator), how often to
    refresh."""
    state = app_state()
    possible, who = sign_in_possible(), session_principal()
    context.update(sign_in=possible, writes=possible and (who is None or who.role.allows(Role.OPERATOR)),
                   logged_in=who is not None, user=who.name if who else None, role=who.role.value if who else None,
                   csrf=csrf_token(), refresh_ms=int(state.settings.refresh_s * 1000), here=request.path)
    return context


def _partial() -> bool:
    return request.args.get("partial") == "1"


def _page(name: str, **context) -> str:
    """The whole page, or only its changing part for ``?partial=1``."""
    return render_template(f"{name}_body.html.j2" if _partial() else f"{name}.html.j2", **_context(**context))


def _overview_body() -> str:
    where = component_filter(request.args.getlist("state"), request.args.getlist("label"))
    model = pagemodels.overview(app_state().source, where, request.args.get("after") or None)
    filters = {"state": request.args.getlist("state"), "label": request.args.getlist("label")}
    return render_template("index_body.html.j2", **_context(**model, filters=filters))


@blueprint.get("/")
def index():
    """The overview. Its live part is the same for everyone, so the daemon reuses it (web.cache); the
    frame around it (login state, CSRF token) is this browser's own."""
    state = app_state()
    key = ("overview", tuple(sorted((k, v) for k, v in request.args.items(multi=True) if k != "partial")))
    body = state.cache.get(key, state.source.version(), _overview_body)
    if _partial():
        return body
    return render_template("index.html.j2", **_context(body=Markup(body)))


@blueprint.get("/components/<name>")
def component(name: str):
    path = validate(NamePath, {"name": name})  # the API's own bounds: no NUL, at most 63 characters
    range_key = chartmodels.latency_range(request.args.get("range"))
    return _page("component", **pagemodels.component_page(app_state().source, path.name, range_key))


@blueprint.get("/incidents/<int:incident_id>")
def incident(incident_id: int):
    path = validate(IncidentPath, {"id": incident_id})  # within the id column's range
    return _page("incident", **pagemodels.incident_page(app_state().source, path.id))


@blueprint.get("/report")
def report():
    since = request.args.get("since") or "7d"
    component = request.args.get("component") or None
    try:
        since_s = parse_duration(since)
    except ValueError as exc:
        raise InputError(str(exc), field="since") from None
    source = app_state().source
    built = build_report(source.db, since_s, component=component, clock=source.clock)
    return render_html(built, css_href="/static/report.css", since=since, component=component or "")


@blueprint.get("/login")
def login_form():
    return _page("login", next=local_path(request.args.get("next")), error=None)


@blueprint.post("/login")
def login():
    """A user's name and password (or, with no name, the legacy token) for a session cookie."""
    state = app_state()
    if not sign_in_possible():
        raise HttpError(405, "writes are disabled: there are no users and no token to log in with")
    check_csrf()
    check_not_throttled("passwords")
    name = request.form.get("user", "").strip()
    password = request.form.get("password") or request.form.get("token") or ""
    if name:
        who = accounts.login(state.source.db, name, password)
        cookie = state.auth.new_session(who.name, str(who.epoch)) if who else None
    else:
        who = None
        cookie = state.auth.new_session(LEGACY_NAME, state.auth.legacy_epoch()) if state.auth.token_matches(
            password) else None
    if cookie is None:
        state.auth.throttle.failed(remote_address(), state.auth.fingerprint(f"{name}\n{password}"))
        raise HttpError(401, "wrong user name or password", field="password")
    response = redirect(local_path(request.form.get("next")), code=303)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_ABSOLUTE_S, httponly=True, samesite="Strict",
                        secure=request.is_secure)
    return response


@blueprint.post("/logout")
def logout():
    check_csrf()
    response = redirect("/", code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="Strict")
    return response


@blueprint.get("/static/<filename>")
def static(filename: str) -> Response:
    if filename == "report.css":
        text = resources.files("orchestrator.reports").joinpath("templates/report.css").read_text()
        kind = "text/css"
    elif filename in STATIC:
        text = resources.files("orchestrator.web").joinpath(f"static/{filename}").read_text()
        kind = STATIC[filename]
    else:
        abort(404)
    response = make_response(text)
    response.headers["Content-Type"] = f"{kind}; charset=utf-8"
    response.headers["Cache-Control"] = f"public, max-age={STATIC_MAX_AGE_S}"
    return response
