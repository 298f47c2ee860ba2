"""Plain view models of database rows: the stable shapes printed as JSON and given to templates.

Views leave the process (CLI tables and JSON, the web API, reports), so they are built redacted:
URL passwords, secret-looking headers and vars, ``secret_vars`` and the component's secret values
anywhere in its texts (last error...) show as ``***``; ``${env:…}`` references stay visible.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.components.registry import definition_of
from orchestrator.core.errors import NotFoundError
from orchestrator.core.redaction import redact_view, secret_values
from orchestrator.db.models import Component
from orchestrator.incidents.queries import open_incidents_by_component


def effective_state(row: Component, now: datetime) -> str:
    """The state an operator should see: a hold set by the CLI shows at once, before the daemon acts."""
    return row.hold_at(now) or row.state


def component_view(row: Component, names_by_id: dict[int, str], now: datetime,
                   open_incident: int | None = None) -> dict[str, Any]:
    """One component as `component list --json` prints it (documented in docs/cli.md), redacted."""
    definition = definition_of(row, names_by_id)
    check = definition.pop("check")
    view = {
        "name": row.name,
        "kind": row.check_kind,
        "url": row.url,
        **{k: v for k, v in definition.items() if k != "name"},
        "check": check,
        "paused_until": row.paused_until,
        "paused_reason": row.paused_reason,
        "state": effective_state(row, now),
        "state_since": row.state_since,
        "last_check_at": row.last_check_at,
        "next_check_at": row.next_check_at,
        "last_latency_ms": row.last_latency_ms,
        "last_error": row.last_error,
        "open_incident": open_incident,
    }
    return redact_view(view, secret_values(row))


def component_views(session: Session, now: datetime, name: str | None = None) -> list[dict[str, Any]]:
    """Every component's view (or just ``name``'s; NotFoundError if unknown), with its open incident."""
    rows = list(session.scalars(select(Component).order_by(Component.name)))
    names = {r.id: r.name for r in rows}
    if name is not None:
        rows = [r for r in rows if r.name == name]
        if not rows:
            raise NotFoundError(f"no component named {name!r}", field="name")
    incidents = open_incidents_by_component(session)
    return [component_view(r, names, now, incidents.get(r.id)) for r in rows]
