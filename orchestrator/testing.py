"""A testing kit for strategy authors (and this project's own tests): build a context, a component, move
a clock, script a strategy. Nothing here is used by the daemon.

    from orchestrator.testing import FakeClock, make_context, stub_component

    clock = FakeClock()
    context = make_context(stub_component(vars={"unit": "api.service"}), clock=clock, timeout_s=30)
    result = MyStrategy(MyStrategy.Params(...)).execute(context)

``make_context`` gives the daemon's own probe (real checks of real endpoints) and sender (real
deliveries) unless a test passes its own ``probe`` / ``send``: fake only at the edges.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from orchestrator.core.clock import FakeClock
from orchestrator.health.checkers import probe_now
from orchestrator.incidents.notify_send import send as deliver
from orchestrator.strategy import (
    CheckSpec,
    Clock,
    ComponentView,
    Probe,
    Send,
    StepResult,
    Strategy,
    StrategyContext,
    StrategyError,
    StrategyFailure,
    StrategyParams,
    VerifyMode,
)

__all__ = ["FakeClock", "StubParams", "StubStrategy", "make_context", "stub_component"]

#: the URL of a stub component: a loopback port nothing listens on (the discard port)
STUB_URL = "http://127.0.0.1:9/health"


def stub_component(name: str = "web", url: str = STUB_URL, *, check: CheckSpec | None = None,
                   **fields: object) -> ComponentView:
    """A component view as the executor would build it; ``check`` is an http check of ``url`` unless
    given. Other fields (``vars``, ``labels``, ``backup_url``, ``replicas``…) pass through."""
    return ComponentView(name=name, url=url, check=check or CheckSpec(kind="http", url=url), **fields)  # type: ignore[arg-type]


def make_context(component: ComponentView | None = None, *, incident_id: int = 1, step_index: int = 0,
                 attempt: int = 1, timeout_s: float = 60.0, clock: Clock | None = None, dry_run: bool = False,
                 probe: Probe | None = None, send: Send | None = None) -> StrategyContext:
    """A context like the executor's: deadline ``timeout_s`` from now on ``clock`` (a FakeClock unless
    given), a bound logger, the daemon's probe and sender unless replaced."""
    return StrategyContext.create(component or stub_component(), incident_id=incident_id, step_index=step_index,
                                  attempt=attempt, timeout_s=timeout_s, clock=clock or FakeClock(),
                                  dry_run=dry_run, probe=probe or probe_now, send=send or deliver)


class StubParams(StrategyParams):
    """What each execute() does in turn (the last entry repeats), and the facts a success reports."""

    script: list[Literal["succeed", "fail", "raise", "raise_permanent"]] = Field(default_factory=lambda: ["succeed"])
    facts: dict[str, str | int | None] = Field(default_factory=dict)


class StubStrategy(Strategy):
    """A scripted strategy: succeeds, fails or raises as its params say, and keeps every context it got
    (``calls``). Register it under an entry point to drive the executor in a test."""

    name = "stub"
    Params = StubParams
    params: StubParams
    verification = VerifyMode.NONE
    idempotent = True

    def __init__(self, params: StubParams | None = None) -> None:
        super().__init__(params or StubParams())
        self.calls: list[StrategyContext] = []

    def execute(self, context: StrategyContext) -> StepResult:
        """Do the next scripted thing."""
        self.calls.append(context)
        script = self.params.script
        action = script[min(len(self.calls), len(script)) - 1]
        now = context.clock.now()
        if action == "raise":
            raise StrategyFailure(f"stub call {len(self.calls)} raised")
        if action == "raise_permanent":
            raise StrategyError(f"stub call {len(self.calls)} raised", permanent=True)
        if action == "fail":
            return StepResult.failed(f"stub call {len(self.calls)} failed", started_at=now, finished_at=now)
        facts: Mapping[str, object] = dict(self.params.facts)
        return StepResult.succeeded(f"stub call {len(self.calls)} succeeded", started_at=now, finished_at=now,
                                    facts=facts)
