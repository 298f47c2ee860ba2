"""Which endpoint a component is checked at.

After a failover the component's active target is ``backup``: its health check (and every later
verification) must then probe ``backup_url``, not the dead primary. The daemon's scheduler and the
recovery executor both build checks through :func:`effective_check`, so they never disagree.
"""

from __future__ import annotations

from orchestrator.core.check_spec import CheckSpec
from orchestrator.db.models import Component

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
