"""Which endpoint a component is checked at, and its other values as recovery left them.

What the operator declares (the definition: ``replicas``, ``vars``) and what recovery learned
(``learned_replicas``, ``learned_vars``, ``active_target``) live in separate columns, each with its own
writer; the effective value is the learned one while set. Re-applying a definition therefore never
undoes a scale-up, a rollback or a failover.

After a failover the component's active target is ``backup``: its health check (and every later
verification) must then probe ``backup_url``, not the dead primary. The daemon's scheduler and the
recovery executor both build checks through :func:`effective_check`, so they never disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.db.models import Component

if TYPE_CHECKING:  # pydantic is imported where a check is built: `status` and `component list` read without it
    from orchestrator.core.check_spec import CheckSpec

BACKUP = "backup"
PRIMARY = "primary"


def base_check(row: Component) -> CheckSpec:
    """The check as registered (primary target)."""
    from orchestrator.core.check_spec import CheckSpec

    spec = dict(row.check_spec or {})
    if not spec:
        spec = {"kind": row.check_kind or "http", "url": row.url}
    return CheckSpec.model_validate(spec)


def effective_check(row: Component) -> CheckSpec:
    """The check to run now: the registered one, with ``url`` swapped for ``backup_url`` while the
    backup is the active target (http checks; a tcp check given by url follows it too)."""
    spec = base_check(row)
    if row.active_target == BACKUP and row.backup_url and spec.url:
        return spec.model_copy(update={"url": row.backup_url})
    return spec


def effective_replicas(row: Component) -> int | None:
    """The replica count recovery last set, else the declared one."""
    return row.learned_replicas if row.learned_replicas is not None else row.replicas


def effective_vars(row: Component) -> dict[str, Any]:
    """The declared vars with what recovery learned laid over them (a learned None removes the var)."""
    merged = {**(row.vars or {}), **(row.learned_vars or {})}
    return {key: value for key, value in merged.items() if value is not None}


def learned_view(row: Component) -> dict[str, Any]:
    """What recovery learned, as `component show --json` and the API print it beside the definition."""
    return {"active_target": row.active_target or PRIMARY, "replicas": row.learned_replicas,
            "vars": dict(sorted((row.learned_vars or {}).items()))}
