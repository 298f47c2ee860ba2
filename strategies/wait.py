"""Do nothing, on purpose: give a component the step's verification window to heal by itself.

Many failures (a GC pause, a dependency blip, a pod rescheduling) clear within seconds; a ``wait``
step before a restart avoids acting on them. The executor's verification (``verify.deadline``) is the
waiting: this strategy returns at once, and the step passes only if the health check does.
"""

from __future__ import annotations

from pydantic import Field

from orchestrator.strategy import StepResult, Strategy, StrategyContext, StrategyParams, VerifyMode


class WaitParams(StrategyParams):
    """Only an optional ``reason`` recorded in the journal."""

    reason: str = Field(default="give it time to heal by itself", max_length=200)


class WaitStrategy(Strategy):
    """Succeed immediately; verification decides. Safe to repeat after a crash."""

    name = "wait"
    Params = WaitParams
    params: WaitParams
    verification = VerifyMode.CHECK
    idempotent = True

    def execute(self, context: StrategyContext) -> StepResult:
        now = context.clock.now()
        return StepResult.succeeded(f"waiting: {self.params.reason}", started_at=now, finished_at=now)

    def describe(self, context: StrategyContext) -> str:
        return f"wait for {context.component.name} to heal by itself ({self.params.reason})"
