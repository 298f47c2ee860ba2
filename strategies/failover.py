"""Fail over to the standby: promote it with a command or HTTP call, then make it the active target.

The component's own health check still points at the old target, so this strategy verifies itself
(VerifyMode.OWN) by checking the new one. When the backup is already active, "failover" goes back to
the primary, so the same plan works in both directions.
"""

from __future__ import annotations

from typing import Literal

from orchestrator.strategy import CheckSpec, StepResult, Strategy, StrategyContext, StrategyError, VerifyMode

from ._actions import ActionParams, act, describe_action

#: Seconds one verification check may take at most (also bounded by the step deadline).
MAX_VERIFY_TIMEOUT_S = 10.0


class FailoverParams(ActionParams):
    """``command`` or ``http`` that promotes the standby; ``{target_url}`` / ``{from_url}`` are filled."""

    placeholder_names = ("target", "target_url", "from_url")


class FailoverStrategy(Strategy):
    """Switch the component's active target; the executor persists ``facts["active_target"]``."""

    name = "failover"
    Params = FailoverParams
    params: FailoverParams
    verification = VerifyMode.OWN
    persists = {"active_target": "active_target"}

    @staticmethod
    def _switch(context: StrategyContext) -> tuple[Literal["primary", "backup"], str, str]:
        """(new active target, URL switched from, URL switched to)."""
        comp = context.component
        if not comp.backup_url:
            raise StrategyError(f"component {comp.name!r} has no backup URL to fail over to "
                                "(set one with: component update --backup-url URL)", permanent=True)
        if comp.active_target == "backup":
            return "primary", comp.backup_url, comp.url
        return "backup", comp.url, comp.backup_url

    def _extra(self, context: StrategyContext) -> dict[str, object]:
        target, old, new = self._switch(context)
        return {"target": target, "target_url": new, "from_url": old}

    def execute(self, context: StrategyContext) -> StepResult:
        started = context.clock.now()
        target, old, new = self._switch(context)
        output = act(self.params, context, self._extra(context))
        return StepResult.succeeded(f"failed over {context.component.name} to {target} {new}",
                                    started_at=started, finished_at=context.clock.now(), output=output,
                                    facts={"active_target": target, "from": old, "to": new})

    def verify(self, context: StrategyContext) -> bool:
        """Check the new target with the component's check settings, pointed at the new URL."""
        _, _, new = self._switch(context)
        base = context.component.check
        spec = base.model_copy(update={"url": new}) if base.kind == "http" else CheckSpec(kind="http", url=new)
        timeout_s = max(0.1, min(context.remaining_s(), MAX_VERIFY_TIMEOUT_S))
        return bool(context.probe(spec, timeout_s).ok)

    def describe(self, context: StrategyContext) -> str:
        target, _, new = self._switch(context)
        return f"{describe_action(self.params, context, self._extra(context))}; then make {target} {new} active"

