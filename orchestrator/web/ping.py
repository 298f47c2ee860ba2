"""``/ping/<token>``: where a push monitor's job reports (success, ``/start``, ``/fail``, ``/<exit status>``).

GET or POST, no authentication: the token in the URL is the secret (a random UUID, shown only to an
operator by ``component show`` / ``component ping-url``). The body (POST) is the run's log excerpt,
capped and redacted (orchestrator.history.pings). Answers are short plain text, the same for every
unknown token, so nothing tells a caller which other tokens exist: 200 ``OK``, 400 for a bad action
(naming it), 404 for an unknown token, 413 for a body over the request cap, 429 past the per-token
rate (with ``Retry-After``), 503 while the database is away and the token was never seen.
"""

from __future__ import annotations

import math

from flask import Blueprint, Response, request

from orchestrator.history.pings import MAX_REQUEST_BYTES, PingRefused, action_kind
from orchestrator.web.state import app_state

blueprint = Blueprint("ping", __name__)


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", status=status, content_type="text/plain; charset=utf-8",
                    headers={"Cache-Control": "no-store", **(headers or {})})


@blueprint.route("/ping/<token>", methods=["GET", "POST"])
@blueprint.route("/ping/<token>/<action>", methods=["GET", "POST"])
def ping(token: str, action: str | None = None) -> Response:
    try:
        action_kind(action)
    except ValueError as exc:
        return _text(400, f"action: {exc}")
    if (request.content_length or 0) > MAX_REQUEST_BYTES:
        return _text(413, f"body: longer than {MAX_REQUEST_BYTES} bytes")
    body = request.get_data(cache=False) if request.method == "POST" else b""
    try:
        app_state().source.pings().receive(token, action, body[:MAX_REQUEST_BYTES])
    except PingRefused as refused:
        headers = {} if refused.retry_after_s is None else {"Retry-After": str(math.ceil(refused.retry_after_s))}
        return _text(refused.status, refused.message, headers)
    return _text(200, "OK")
