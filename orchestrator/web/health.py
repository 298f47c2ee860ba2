"""``/healthz`` (alive: process and scheduler) and ``/readyz`` (ready: database reachable, view reliable).

Both answer ``application/health+json`` (the IETF health-check draft): ``status`` is ``pass``, ``warn``
or ``fail``, with one entry per check; ``fail`` answers 503 so systemd, load balancers and Kubernetes
probes need no parsing.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response

from orchestrator import __version__
from orchestrator.core.defaults import HEARTBEAT_INTERVAL_S
from orchestrator.core.errors import first_line
from orchestrator.history.drops import WRITES_FAILING_SHOWN_S
from orchestrator.web.state import app_state
from orchestrator.web.summary import scheduler_stuck

blueprint = Blueprint("health", __name__)

CONTENT_TYPE = "application/health+json"
_RANK = {"pass": 0, "warn": 1, "fail": 2}


def _answer(checks: dict[str, tuple[str, Any, str]]) -> Response:
    status = max((c[0] for c in checks.values()), key=_RANK.__getitem__, default="pass")
    body = {"status": status, "version": __version__,
            "checks": {name: [{"status": s, "observedValue": value, "output": output}]
                       for name, (s, value, output) in checks.items()}}
    return Response(json.dumps(body), status=503 if status == "fail" else 200, content_type=CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})


def _lock(facts, checks: dict[str, tuple[str, Any, str]]) -> bool:
    """``instance:lock`` fails once the daemon lost its instance lock (it is stopping); True if so."""
    if facts.lock_lost is None:
        return False
    checks["instance:lock"] = ("fail", False, f"instance lock lost, not acting or writing: {facts.lock_lost}")
    return True


@blueprint.get("/healthz")
def healthz() -> Response:
    facts = app_state().source.facts()
    checks: dict[str, tuple[str, Any, str]] = {"process:alive": ("pass", True, "")}
    _lock(facts, checks)
    if facts.mode == "daemon":
        if not facts.scheduler_running:
            checks["scheduler:running"] = ("fail", False, "the scheduler is not running")
        elif scheduler_stuck(facts, HEARTBEAT_INTERVAL_S):
            checks["scheduler:running"] = ("fail", facts.scheduler_stalled_s,
                                           "the scheduler has not run its heartbeat job in time")
        else:
            checks["scheduler:running"] = ("pass", True, "")
    else:
        checks["daemon:heartbeat"] = ("pass" if facts.daemons_alive else "warn", facts.daemons_alive,
                                      "" if facts.daemons_alive else "no daemon has written a heartbeat lately")
    return _answer(checks)


@blueprint.get("/readyz")
def readyz() -> Response:
    source = app_state().source
    checks: dict[str, tuple[str, Any, str]] = {}
    if _lock(source.facts(), checks):
        return _answer(checks)
    try:
        source.db.check_reachable()
        checks["database:reachable"] = ("pass", True, "")
    except Exception as exc:  # any failure to reach it means not ready; the reason is the output
        checks["database:reachable"] = ("fail", False, first_line(exc))
        return _answer(checks)
    facts = source.facts()
    checks["view:reliable"] = ("pass", True, "") if facts.view_reliable else (
        "fail", False, "the orchestrator's own sentinel checks are failing: its view cannot be trusted")
    if facts.db_writes_healthy is False:
        failing_s = facts.db_writes_failing_s
        long = failing_s is not None and failing_s >= WRITES_FAILING_SHOWN_S
        checks["database:writes"] = ("fail" if long else "warn", failing_s,
                                     f"database writes failing for {failing_s or 0:.0f}s; results are buffered")
    return _answer(checks)
