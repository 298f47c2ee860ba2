"""``GET /api/v1/degradation``: the published degradation level for applications, with ETag and long-poll.

- ``?scope=team=checkout`` picks a scope (default ``global``); an unknown one answers 404.
- The answer carries ``ETag: "<version>"``; ``If-None-Match`` with the current one answers 304.
- ``?after=VERSION&wait=30s`` holds the request until the version is not VERSION (at once if it
  already is), at most ``wait`` (capped at 60 s): then 200 with the new document, or 304. At most
  ``MAX_LONG_POLLS`` requests wait at once (the server has few threads); more are answered at once.
- ``X-Degradation-Level`` (the global level) is on every API response.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, g, jsonify, make_response, request
from prometheus_client.core import GaugeMetricFamily, Metric

from orchestrator.accounts.roles import Role
from orchestrator.core.errors import NotFoundError
from orchestrator.core.states import DegradationLevel, level_rank
from orchestrator.degradation.policy import GLOBAL_SCOPE
from orchestrator.degradation.service import MAX_WAIT_S
from orchestrator.degradation.store import scope_name
from orchestrator.web import responses
from orchestrator.web.apimodels import DegradationQuery, seconds
from orchestrator.web.operations import operation
from orchestrator.web.source import WebSource
from orchestrator.web.state import AppState, app_state

blueprint = Blueprint("degradation_api", __name__, url_prefix="/api/v1")

#: Requests that may wait at once; the rest are answered without waiting (clients poll by ttl_s then).
MAX_LONG_POLLS = 4
_long_polls = threading.BoundedSemaphore(MAX_LONG_POLLS)


@operation(blueprint, "GET", "/degradation",
           summary="The published degradation level and feature map (global, or a label-selector scope)",
           query=DegradationQuery, responses={200: responses.Degradation, 304: None}, role=Role.VIEWER,
           headers=({"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                     "description": "The ETag of the version held: 304 while unchanged."},))
def degradation(query: DegradationQuery):
    """The level for applications: ETag/If-None-Match, and a long-poll with after + wait."""
    source = app_state().source
    scope = scope_name(query.scope)
    wait_s, after = min(seconds(query.wait) or 0.0, MAX_WAIT_S), query.after
    docs = _documents(source)
    doc = docs.get(scope)
    if doc is None:
        known = ", ".join(sorted(docs)) or "none yet (no daemon has published a level)"
        raise NotFoundError(f"no degradation level for scope {scope!r}; scopes: {known}", field="scope")
    if after is not None and wait_s > 0 and doc["version"] == after and _long_polls.acquire(blocking=False):
        try:
            doc = source.degradation_wait(scope, after, wait_s) or doc
            g.pop("degradation_docs", None)  # it waited: the header reads the level again
        finally:
            _long_polls.release()
    version = str(doc["version"])
    unchanged = (after is not None and doc["version"] == after) or request.if_none_match.contains(version)
    response = make_response("", 304) if unchanged else jsonify(doc)
    response.set_etag(version)
    response.headers["Cache-Control"] = f"max-age={int(doc['ttl_s'])}, must-revalidate"
    return response


def _documents(source: WebSource) -> dict[str, dict[str, Any]]:
    """The published documents, read once per request (the route and the header share them)."""
    if "degradation_docs" not in g:
        g.degradation_docs = source.degradation()
    return g.degradation_docs


def level_metrics(source: WebSource) -> Iterator[Metric]:
    """``orchestrator_degradation_level{scope}`` (0 normal … 3 emergency), one-hot per level, and the
    override flag."""
    docs = source.degradation()
    if not docs:
        return
    rank = GaugeMetricFamily("orchestrator_degradation_level",
                             "Published degradation level: 0 normal, 1 degraded, 2 minimal, 3 emergency.",
                             labels=["scope"])
    one_hot = GaugeMetricFamily("orchestrator_degradation_level_state", "1 for the level each scope publishes.",
                                labels=["scope", "level"])
    override = GaugeMetricFamily("orchestrator_degradation_override", "1 while an operator override is in force.",
                                 labels=["scope"])
    for scope, doc in sorted(docs.items()):
        rank.add_metric([scope], level_rank(doc["level"]))
        for level in DegradationLevel:
            one_hot.add_metric([scope, level.value], 1.0 if level.value == doc["level"] else 0.0)
        override.add_metric([scope], 1.0 if doc["override"] else 0.0)
    yield from (rank, one_hot, override)


def level_header(state: AppState) -> str | None:
    """The global level for the ``X-Degradation-Level`` header of API responses (None: not an API call)."""
    if not request.path.startswith("/api/"):
        return None
    try:
        doc = _documents(state.source).get(GLOBAL_SCOPE)
    except Exception:  # the database may be away; the answer itself says what failed
        return None
    return None if doc is None else doc["level"]
