"""The Flask app factory: blueprints from one list, response headers from one hook, errors in one place."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from jinja2 import ChoiceLoader, PackageLoader, StrictUndefined
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from orchestrator.core.errors import ConflictError, InputError, NotFoundError, OrchestratorError
from orchestrator.reports.render import register_filters
from orchestrator.web.auth import CSRF_COOKIE, SESSION_ABSOLUTE_S, SESSION_COOKIE, Auth
from orchestrator.web.cache import AnswerCache
from orchestrator.web.guard import require_login_to_read
from orchestrator.web.source import WebSource
from orchestrator.web.state import EXTENSION, AppState, HttpError, WebSettings

log = logging.getLogger("orchestrator.web")

#: Everything the page loads comes from this server; no inline script or style anywhere.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                           "form-action 'self'")
SECURITY_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
                    "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"}


class _JSON(DefaultJSONProvider):
    """Times as ISO 8601, exactly as the CLI's --json prints them."""

    sort_keys = False

    @staticmethod
    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        return DefaultJSONProvider.default(value)


def blueprints():
    """Every blueprint the app serves, in one list."""
    from orchestrator.web import (
        alerts_api,
        api,
        badges,
        degradation_api,
        health,
        metrics,
        pages,
        ping,
        statuspage,
    )

    return [pages.blueprint, api.blueprint, degradation_api.blueprint, metrics.blueprint, health.blueprint,
            badges.blueprint, statuspage.blueprint, alerts_api.blueprint, ping.blueprint]


def header_providers():
    """Functions ``(app_state) -> value | None`` for response headers, name → function."""
    from orchestrator.web import degradation_api

    return {"X-Degradation-Level": degradation_api.level_header}


def create_app(source: WebSource, settings: WebSettings | None = None) -> Flask:
    """The web app over ``source`` (a running daemon or the database alone)."""
    settings = settings or WebSettings()
    app = Flask("orchestrator.web", static_folder=None)
    app.json = _JSON(app)
    app.jinja_env.autoescape = True
    app.jinja_env.undefined = StrictUndefined
    app.jinja_env.loader = ChoiceLoader([PackageLoader("orchestrator.web", "templates"),
                                         PackageLoader("orchestrator.reports", "templates")])
    register_filters(app.jinja_env)
    state = AppState(source=source, settings=settings, auth=Auth(settings.token, clock=source.clock),
                     cache=AnswerCache(source.clock))
    app.extensions[EXTENSION] = state
    if settings.token:
        # worded without "token:" so the log redaction leaves the sentence whole
        log.warning("web: the single API token (ORCHESTRATOR_API_TOKEN or api_token_file) is deprecated; it "
                    "still acts as an admin, but give each person a user and their own tokens instead "
                    "(orchestrator users add, orchestrator tokens create; docs/web.md)")
    if settings.trusted_proxies:
        # the client address (throttling, the audit's host) and scheme (Secure cookies) as the proxies saw them
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies,  # type: ignore[method-assign]
                                x_proto=settings.trusted_proxies, x_host=0, x_port=0, x_prefix=0)
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    providers = header_providers()
    app.before_request(require_login_to_read)

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        for name, provider in providers.items():
            value = provider(state)
            if value is not None:
                response.headers[name] = value
        if request.method == "POST" and response.status_code < 400:
            state.cache.invalidate()  # a write through this app: the next page shows it
        renewed = g.get("renewed_session")
        if renewed and not response.headers.getlist("Set-Cookie"):  # not over a login or logout
            response.set_cookie(SESSION_COOKIE, renewed, max_age=SESSION_ABSOLUTE_S, httponly=True,
                                samesite="Strict", secure=request.is_secure)
        new_cookie = g.get("new_csrf_cookie")
        if new_cookie:
            response.set_cookie(CSRF_COOKIE, new_cookie, httponly=True, samesite="Strict", secure=request.is_secure)
        return response

    app.register_error_handler(HttpError, _http_error)
    app.register_error_handler(OrchestratorError, _service_error)
    app.register_error_handler(HTTPException, _werkzeug_error)
    app.register_error_handler(Exception, _internal)
    return app


def _status_of(exc: OrchestratorError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, InputError):
        return 400
    return 503  # DatabaseError and the like: the service is what is failing


def _answer(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None):
    form = request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")
    if (request.path.startswith("/api/") and not form) or request.accept_mimetypes.best == "application/json":
        response = jsonify({"error": {"message": message, "field": field, "status": status}})
    else:
        response = Response(render_template("error.html.j2", status=status, message=message, field=field),
                            content_type="text/html; charset=utf-8")
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _werkzeug_error(exc: HTTPException):
    """Routing's own answers (404, 405, 413 …) in the same shape; a 405 keeps its ``Allow`` header."""
    headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
    return _answer(exc.code or 500, exc.description or exc.name, headers=headers)


def _http_error(exc: HttpError):
    return _answer(exc.status, exc.message, exc.field, exc.headers)


def _service_error(exc: OrchestratorError):
    message = exc.message if isinstance(exc, InputError) else str(exc)
    return _answer(_status_of(exc), message, getattr(exc, "field", None))


def _internal(exc: Exception):
    log.exception("web request failed path=%s", request.path)
    return _answer(500, "the request failed on the server; the log has the details")
