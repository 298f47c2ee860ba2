"""Public status pages: ``/status/NAME`` and its Atom feed ``/status/NAME/feed.atom``, without login.

Served from the database alone (the page definition, the components' states, the rollups and the
public incident updates), so ``orchestrator web`` on another machine serves it as the daemon does.
No script: the page is plain HTML and inline SVG with ``<title>`` tooltips. Both answers carry
``Cache-Control: public, max-age=30`` and an ETag (a client revalidating an unchanged page gets 304
and no body); the feed also has ``Last-Modified``, the time of its newest entry.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, render_template, request

from orchestrator.web.apimodels import NamePath
from orchestrator.web.operations import validate
from orchestrator.web.state import app_state
from orchestrator.web.statusmodels import status_page

blueprint = Blueprint("statuspage", __name__, url_prefix="/status")

#: how long a browser or proxy may reuse the page without asking (states change; keep it short)
MAX_AGE_S = 30


def _respond(body: str, content_type: str, last_modified=None) -> Response:
    etag = hashlib.sha256(body.encode()).hexdigest()[:32]
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = Response(body, content_type=content_type)
    response.set_etag(etag)
    if last_modified is not None:
        response.last_modified = last_modified
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE_S}"
    return response


@blueprint.get("/<name>")
def page(name: str) -> Response:
    path = validate(NamePath, {"name": name})
    model = status_page(app_state().source, path.name)
    return _respond(render_template("status.html.j2", **model), "text/html; charset=utf-8")


@blueprint.get("/<name>/feed.atom")
def feed(name: str) -> Response:
    path = validate(NamePath, {"name": name})
    model = status_page(app_state().source, path.name, with_bars=False)
    base = request.url_root.rstrip("/")
    body = render_template("status_feed.atom.j2", base=base, **model)
    return _respond(body, "application/atom+xml; charset=utf-8", model["updated"])
