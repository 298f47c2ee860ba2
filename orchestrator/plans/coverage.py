"""Which components a daemon cannot recover because their plan is missing: one line for the log and
for `status`, so automation never stops silently (a reload with ``plans: {}``, no plan file found)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.db.models import Component
from orchestrator.plans.models import PlanSet

#: Components named in the line at most; the rest are counted.
MAX_NAMED = 10


def plan_warning(session: Session, plans: PlanSet | None) -> str | None:
    """None when every component's plan is in ``plans``; otherwise the line naming those whose plan is
    unknown (or all that have a plan, when there is no plan file)."""
    rows = session.execute(select(Component.name, Component.plan).where(Component.plan.is_not(None))
                           .order_by(Component.name)).all()
    if plans is None:
        missing = [(name, plan) for name, plan in rows]
        why = "no plan file found"
    else:
        missing = [(name, plan) for name, plan in rows if plan not in plans.plans]
        why = f"plan not in {plans.source or 'the plan file'}"
    if not missing:
        return None
    named = ", ".join(f"{name} (plan {plan!r})" for name, plan in missing[:MAX_NAMED])
    more = f" and {len(missing) - MAX_NAMED} more" if len(missing) > MAX_NAMED else ""
    return f"{why}: {len(missing)} component(s) will not be recovered: {named}{more}"
