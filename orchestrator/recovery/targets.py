"""Which endpoint a component is checked at, and the read-only view strategies get of it.

After a failover the component's active target is ``backup``: its health check (and every later
verification) must then probe ``backup_url``, not the dead primary. The daemon's scheduler and the
recovery executor both build checks through :func:`effective_check`, so they never disagree.
"""

from __future__ import annotations

from typing import Literal, cast

from orchestrator.core.redaction import remember, secret_values
from orchestrator.db.models import Component
from orchestrator.health.spec import CheckSpec
from orchestrator.plugins.contract import ComponentView

BACKUP = "backup"
PRIMARY = "primary"


def base_check(row: Component) -> CheckSpec:
    """The check as registered (primary target)."""
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


def component_view(row: Component) -> ComponentView:
    """The frozen snapshot a strategy acts on. ``url`` stays the primary URL (strategies such as
    failover need both); ``check`` is the effective one."""
    target = BACKUP if row.active_target == BACKUP else PRIMARY
    secrets = secret_values(row)
    remember(secrets)  # whatever the strategy logs about this component is masked from here on
    return ComponentView(
        name=row.name,
        url=row.url or "",
        check=effective_check(row),
        vars={k: str(v) for k, v in {**(row.vars or {}), **(row.secret_vars or {})}.items()},
        secrets=secrets,
        labels={k: str(v) for k, v in (row.labels or {}).items()},
        backup_url=row.backup_url,
        active_target=cast(Literal["primary", "backup"], target),
        replicas=row.replicas,
        min_replicas=row.min_replicas,
        max_replicas=row.max_replicas,
    )
