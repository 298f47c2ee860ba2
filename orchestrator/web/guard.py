"""The one gate every guarded operation passes: who is asking (token or login), and whether their role may.

:func:`authorize` is called by ``web.operations`` with the role the operation declares. Reads that
need no more than ``viewer`` are open, as the page is; anything else needs a principal: a Bearer token
(a user's, or the legacy single token) or a login cookie, plus the CSRF token for a cookie write.
Refusals: 405 (no users and no token: writes are off), 429 (throttled), 401 (who?), 403 (CSRF, role,
or a read-scope token writing).

Guarantee kept (docs/web.md, "Users and roles"): it refuses, never lets through: a throttled request
is refused before its credential is compared, and a credential that cannot be resolved (unknown,
revoked, expired, an ended login) is a 401, never a weaker role. Invariants it serves and must never
break: I6 (only a person stops checks or actions: a pause or maintenance window comes from a user with
the operator role, and the audit names them) and I5 (no unrecorded action: every write it lets
through is audited with the user and token id). It guards web requests only; the daemon's own checks
and recovery never pass it, so a locked-out web cannot stop them.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Response, g, redirect, request

from orchestrator.accounts import service
from orchestrator.accounts.roles import Role
from orchestrator.accounts.service import Principal
from orchestrator.web.auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    LEGACY_NAME,
    SESSION_COOKIE,
    SESSION_TOUCH_S,
)
from orchestrator.web.state import HttpError, app_state

#: why a write is refused when nobody could sign in
WRITES_DISABLED = ("writes are disabled: there are no users (add one with `orchestrator users add NAME --role "
                   "operator`) and no legacy API token (ORCHESTRATOR_API_TOKEN)")
#: the principal of the legacy single token
LEGACY = Principal(service.LEGACY_USER, Role.ADMIN, legacy=True)


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


def sign_in_possible() -> bool:
    """Whether anyone could sign in: the legacy token is set, or the database has users."""
    state = app_state()
    return state.auth.legacy_token or service.any_users(state.source.db)


def session_principal() -> Principal | None:
    """The user this browser is logged in as (None: no valid login). Renews the cookie's last-seen time
    on a request made by a person (not the page's own ``?partial=1`` refresh), at most once a minute."""
    if "session_principal" in g:
        return g.session_principal
    state = app_state()
    claim = state.auth.read_session(request.cookies.get(SESSION_COOKIE))
    principal = None
    if claim is not None and claim.name == LEGACY_NAME:
        principal = LEGACY if state.auth.legacy_token and claim.epoch == state.auth.legacy_epoch() else None
    elif claim is not None and claim.epoch.isdigit():
        principal = service.session_principal(state.source.db, claim.name, int(claim.epoch))
    if principal is not None and claim is not None and request.args.get("partial") != "1" and \
            state.auth.clock.now().timestamp() - claim.last >= SESSION_TOUCH_S:
        g.renewed_session = state.auth.new_session(claim.name, claim.epoch, issued=claim.issued)
    g.session_principal = principal
    return principal


def logged_in() -> bool:
    return session_principal() is not None


def check_csrf() -> None:
    """403 unless the request carries the CSRF token of this browser's cookie."""
    presented = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not app_state().auth.csrf_valid(request.cookies.get(CSRF_COOKIE), presented):
        raise HttpError(403, "missing or wrong CSRF token: reload the page and try again", field=CSRF_FIELD)


def check_not_throttled(what: str = "tokens") -> None:
    """429 while this address must wait (web.auth.Throttle)."""
    wait = app_state().auth.throttle.wait_s(remote_address())
    if wait > 0:
        seconds = max(1, round(wait))
        raise HttpError(429, f"too many wrong {what} from this address: try again in {seconds}s",
                        field="Authorization", headers={"Retry-After": str(seconds)})


def token_principal(presented: str) -> Principal | None:
    """Whom ``presented`` (a Bearer token) acts for, after the throttle let it be looked at; a wrong one
    is counted against this address and token."""
    state = app_state()
    check_not_throttled()
    if state.auth.token_matches(presented):
        return LEGACY
    principal = service.token_principal(state.source.db, presented, state.auth.clock.now())
    if principal is None:
        state.auth.throttle.failed(remote_address(), state.auth.fingerprint(presented))
    return principal


def refuse_token() -> HttpError:
    """The 401 of a wrong token."""
    return HttpError(401, "missing or wrong API token", field="Authorization",
                     headers={"WWW-Authenticate": 'Bearer realm="orchestrator"'})


def authorize(needed: Role, writes: bool) -> Principal:
    """The principal allowed to run an operation needing ``needed``, or raise 405, 429, 401 or 403."""
    principal = signed_in(writes)
    if not principal.may(needed, writes):
        why = (f"token {principal.token_id} has scope read" if principal.role.allows(needed)
               else f"{principal.name} is {principal.role.value}")
        need = f"role {needed.value}" + (" and a write token" if principal.token_id and writes else "")
        raise HttpError(403, f"this needs {need}: {why}", field="Authorization")
    return principal


def signed_in(writes: bool = False) -> Principal:
    """Who sends this request (a Bearer token, else a login cookie with, for a write, its CSRF token), or
    raise 405/403 (nobody could sign in), 429, 401 or 403 (CSRF)."""
    if "principal" in g:
        return g.principal
    if not sign_in_possible():
        if writes:
            raise HttpError(405, WRITES_DISABLED, headers={"Allow": "GET, HEAD"})
        raise HttpError(403, WRITES_DISABLED)
    presented = app_state().auth.bearer(request.headers.get("Authorization"))
    if presented is not None:
        principal = token_principal(presented)
        if principal is None:
            raise refuse_token()
    else:
        principal = session_principal()
        if principal is None:
            raise HttpError(401, "log in first (or send Authorization: Bearer <token>)", field="Authorization",
                            headers={"WWW-Authenticate": 'Bearer realm="orchestrator"'})
        if writes:
            check_csrf()
    g.principal = principal
    return principal


#: paths served to anyone even with ``login_to_read``: signing in itself, the probes, the page's own files
OPEN_PATHS = frozenset({"/login", "/logout", "/healthz", "/readyz", "/static/app.css", "/static/app.js",
                        "/static/status.css"})
#: public by design: status pages (for customers) and heartbeat pings (their unguessable URL is the credential)
OPEN_PREFIXES = ("/status/", "/ping/")


def require_login_to_read() -> Response | None:
    """With ``login_to_read`` (a ``before_request`` hook): a request without a valid login or token is
    sent to the login page (a page) or answered 401 (the API, /metrics, badges); writes pass their own
    gate."""
    state = app_state()
    if not state.settings.login_to_read or request.path in OPEN_PATHS or request.path.startswith(OPEN_PREFIXES) or request.method == "POST":
        return None
    if request.headers.get("Authorization") is None and session_principal() is None:
        html = not request.path.startswith(("/api/", "/metrics", "/badge/")) and \
            request.accept_mimetypes.best != "application/json"
        if html:
            return redirect(f"/login?next={quote(request.full_path.rstrip('?'), safe='/?=&')}", code=303)
    signed_in()
    return None


def principal() -> Principal | None:
    """The principal :func:`authorize` let through for this request (None for an open read)."""
    return g.get("principal")
