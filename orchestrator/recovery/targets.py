"""The read-only view strategies get of a component (checked at its effective target,
:func:`orchestrator.components.targets.effective_check`)."""

from __future__ import annotations

from typing import Literal, cast

from orchestrator.components.targets import (
    BACKUP,
    PRIMARY,
    effective_check,
    effective_replicas,
    effective_vars,
)
from orchestrator.core.redaction import remember, secret_values
from orchestrator.db.models import Component
from orchestrator.plugins.contract import ComponentView


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
        vars={k: str(v) for k, v in {**effective_vars(row), **(row.secret_vars or {})}.items()},
        secrets=secrets,
        labels={k: str(v) for k, v in (row.labels or {}).items()},
        backup_url=row.backup_url,
        active_target=cast(Literal["primary", "backup"], target),
        replicas=effective_replicas(row),
        min_replicas=row.min_replicas,
        max_replicas=row.max_replicas,
    )
