"""Scale a component up or down by ``by`` replicas, within its min/max bounds.

The command or HTTP call gets ``{replicas}`` (the new count), ``{from_replicas}`` and ``{by}``; the
executor persists ``facts["to_replicas"]`` as the component's replica count.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from orchestrator.strategy import StepResult, Strategy, StrategyContext, StrategyError

from ._actions import ActionParams, act, describe_action

#: Floor for scaling down when the component declares no min_replicas: never scale to zero by default.
DEFAULT_MIN_REPLICAS = 1


class ScaleParams(ActionParams):
    """``command`` or ``http`` with ``{replicas}``; ``by``: step size (default 1)."""

    placeholder_names = ("replicas", "from_replicas", "by")
    by: int = Field(default=1, ge=1)


class _ScaleStrategy(Strategy):
    """Shared by both directions; ``direction`` is +1 or -1."""

    Params = ScaleParams
    params: ScaleParams
    direction: ClassVar[int] = 1
    persists = {"to_replicas": "replicas"}

    def _counts(self, context: StrategyContext) -> tuple[int, int]:
        """(current replicas, target replicas) or StrategyError(permanent) when out of room."""
        comp = context.component
        if comp.replicas is None:
            raise StrategyError(f"component {comp.name!r} has no replica count; set replicas to scale it",
                                permanent=True)
        current = comp.replicas
        if self.direction > 0:
            target = current + self.params.by
            if comp.max_replicas is not None:
                if current >= comp.max_replicas:
                    raise StrategyError(f"already at max replicas {comp.max_replicas}", permanent=True)
                target = min(target, comp.max_replicas)
        else:
            floor = comp.min_replicas if comp.min_replicas is not None else DEFAULT_MIN_REPLICAS
            if current <= floor:
                raise StrategyError(f"already at min replicas {floor}", permanent=True)
            target = max(current - self.params.by, floor)
        return current, target

    def _extra(self, current: int, target: int) -> dict[str, object]:
        return {"replicas": target, "from_replicas": current, "by": self.params.by}

    def execute(self, context: StrategyContext) -> StepResult:
        started = context.clock.now()
        current, target = self._counts(context)
        output = act(self.params, context, self._extra(current, target))
        return StepResult.succeeded(f"scaled {context.component.name} from {current} to {target} replicas",
                                    started_at=started, finished_at=context.clock.now(), output=output,
                                    facts={"from_replicas": current, "to_replicas": target})

    def describe(self, context: StrategyContext) -> str:
        current, target = self._counts(context)
        return f"{describe_action(self.params, context, self._extra(current, target))} ({current} → {target})"


class ScaleUpStrategy(_ScaleStrategy):
    """Add replicas (up to max_replicas)."""

    name = "scale_up"
    direction = 1


class ScaleDownStrategy(_ScaleStrategy):
    """Remove replicas (down to min_replicas, or 1 when none is set)."""

    name = "scale_down"
    direction = -1
