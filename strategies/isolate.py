"""Take a component out of rotation (isolate) or put it back (restore), through a command or HTTP call.

Isolating limits the damage a broken instance does but does not mend it, so it is not verified and
cannot resolve an incident; restoring puts traffic back, so the component's health check must pass.
Both are idempotent: draining a drained backend, or enabling an enabled one, changes nothing.
"""

from __future__ import annotations

from typing import ClassVar

from orchestrator.strategy import StepResult, Strategy, StrategyContext, VerifyMode

from ._actions import ActionParams, act, describe_action


class RotationParams(ActionParams):
    """``command`` or ``http`` that changes the load balancer / service registry."""


class _RotationStrategy(Strategy):
    """Shared by both directions; ``in_rotation`` is the state the action leaves behind."""

    Params = RotationParams
    params: RotationParams
    idempotent = True
    in_rotation: ClassVar[bool] = False
    verb: ClassVar[str] = ""

    def execute(self, context: StrategyContext) -> StepResult:
        started = context.clock.now()
        output = act(self.params, context, {})
        return StepResult.succeeded(f"{self.verb} {context.component.name}", started_at=started,
                                    finished_at=context.clock.now(), output=output,
                                    facts={"in_rotation": self.in_rotation})

    def describe(self, context: StrategyContext) -> str:
        return f"{describe_action(self.params, context, {})} ({self.verb})"


class IsolateStrategy(_RotationStrategy):
    """Take the component out of rotation."""

    name = "isolate"
    verification = VerifyMode.NONE
    in_rotation = False
    verb = "took out of rotation"


class RestoreStrategy(_RotationStrategy):
    """Put the component back into rotation; verified by its health check."""

    name = "restore"
    verification = VerifyMode.CHECK
    in_rotation = True
    verb = "put back into rotation"
