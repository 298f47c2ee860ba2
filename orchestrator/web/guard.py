"""The one gate every write passes: writes enabled, not throttled, a valid token or session + CSRF."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import g, request

from orchestrator.web.auth import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE
from orchestrator.web.state import HttpError, app_state

#: why a write is refused when no token is configured
WRITES_DISABLED = ("writes are disabled: no API token is configured (set ORCHESTRATOR_API_TOKEN or give "
                   "--api-token-file)")


def remote_address() -> str:
    return request.remote_addr or "unknown"


def csrf_cookie() -> str:
    """This browser's CSRF cookie value (a new one is set on the response when it had none)."""
    value = request.cookies.get(CSRF_COOKIE)
    if not value:
        value = g.get("new_csrf_cookie")
        if value is None:
            value = g.new_csrf_cookie = app_state().auth.new_csrf_cookie()
    return value


def csrf_token() -> str:
    """The token this browser's forms must carry."""
    return app_state().auth.csrf_token(csrf_cookie())


def logged_in() -> bool:
    return app_state().auth.session_valid(request.cookies.get(SESSION_COOKIE))


def check_csrf() -> None:
    """403 unless the request carries the CSRF token of this browser's cookie."""
    presented = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not app_state().auth.csrf_valid(request.cookies.get(CSRF_COOKIE), presented):
        raise HttpError(403, "missing or wrong CSRF token: reload the page and try again", field=CSRF_FIELD)


def check_not_throttled() -> None:
    """429 while this address must wait (web.auth.Throttle)."""
    wait = app_state().auth.throttle.wait_s(remote_address())
    if wait > 0:
        seconds = max(1, round(wait))
        raise HttpError(429, f"too many wrong tokens from this address: try again in {seconds}s",
                        field="Authorization", headers={"Retry-After": str(seconds)})


def accept_token(presented: str) -> bool:
    """Whether ``presented`` is the token (after the throttle let it be looked at); a wrong one is counted
    against this address and token."""
    auth = app_state().auth
    check_not_throttled()
    if auth.token_matches(presented):
        return True
    auth.throttle.failed(remote_address(), auth.fingerprint(presented))
    return False


def refuse_token() -> HttpError:
    """The 401 of a wrong token."""
    return HttpError(401, "missing or wrong API token", field="Authorization",
                     headers={"WWW-Authenticate": 'Bearer realm="orchestrator"'})


def authorize_write() -> None:
    """Let the write through, or raise 405 (no token configured), 429, 401 or 403."""
    auth = app_state().auth
    if not auth.writes_enabled:
        raise HttpError(405, WRITES_DISABLED, headers={"Allow": "GET, HEAD"})
    presented = auth.bearer(request.headers.get("Authorization"))
    if presented is not None:
        if not accept_token(presented):
            raise refuse_token()
        return
    if not logged_in():
        raise HttpError(401, "log in first (or send Authorization: Bearer <token>)", field="Authorization",
                        headers={"WWW-Authenticate": 'Bearer realm="orchestrator"'})
    check_csrf()


def write(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a write route: :func:`authorize_write` runs before it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        authorize_write()
        return fn(*args, **kwargs)

    return wrapper
