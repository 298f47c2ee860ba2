"""Plain view models of database rows: the stable shapes printed as JSON and given to templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.db.models import Component
from orchestrator.registry import definition_of
from orchestrator.states import ComponentState


def effective_state(row: Component, now: datetime) -> str:
    """The state an operator should see: a hold set by the CLI shows at once, before the daemon acts."""
    if row.paused_until is not None and row.paused_until > now:
        return ComponentState.PAUSED.value
    if row.maintenance_until is not None and row.maintenance_until > now:
        return ComponentState.MAINTENANCE.value
    return row.state


def component_view(row: Component, names_by_id: dict[int, str], now: datetime,
                   open_incident: int | None = None) -> dict[str, Any]:
    """One component as `component list --json` prints it (documented in docs/cli.md)."""
    definition = definition_of(row, names_by_id)
    check = definition.pop("check")
    return {
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
        "last_latency_ms": row.last_latency_ms,
        "last_error": row.last_error,
        "open_incident": open_incident,
    }
