"""One attempt of one step: run the strategy under its deadline, then verify the way it asks.

Returns an :class:`AttemptResult` the executor journals; never raises for anything the strategy
does (a bug in a plugin is recorded with its traceback and never stops the daemon).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.errors import StrategyError
from orchestrator.core.states import AttemptStatus
from orchestrator.plans import Step
from orchestrator.plugins.contract import Strategy, StrategyContext, StrategyFailure, VerifyMode
from orchestrator.recovery.verify import Verification, run_bounded, verify_until

#: Extra seconds the bounded call waits past the step timeout: the strategy's own command is killed
#: at the deadline by orchestrator.core.proc and needs a moment to report it.
EXECUTE_GRACE_S = 2.0
#: Fraction of the timeout after which a failure counts as a timeout.
TIMEOUT_FRACTION = 0.98


@dataclass
class AttemptResult:
    """How one attempt went: the journal status and what to do next."""

    status: AttemptStatus
    detail: str
    output: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    permanent: bool = False  # retrying this step cannot help: go to the next step at once
    interrupted: bool = False  # shutdown came during verification: leave the row for reconciliation
    #: the passing checks of a verified attempt, for the health plane
    results: list[CheckResult] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.status is AttemptStatus.SUCCEEDED and bool(self.verification.get("passed"))


def execute(strategy: Strategy, context: StrategyContext, step: Step) -> AttemptResult:
    """Run ``strategy.execute`` bounded by the step timeout; classify how it ended."""
    started = context.clock.monotonic()
    bounded = run_bounded(lambda: strategy.execute(context), step.timeout_s + EXECUTE_GRACE_S,
                          f"step-{context.incident_id}-{context.step_index}-{context.attempt}")
    if not bounded.finished:
        # A process stopped past the bound (SIGSTOP, a suspended VM) wakes with both timers expired:
        # the strategy's thread, whose command may long have ended, gets one more grace to report
        # before the attempt is called timed out (the record must say what the command did).
        bounded.wait(EXECUTE_GRACE_S)
    elapsed = context.clock.monotonic() - started
    if not bounded.finished:
        return AttemptResult(AttemptStatus.TIMED_OUT, f"{step.label} did not return within {step.timeout_s:g}s")
    exc = bounded.error
    if exc is not None:
        timed_out = elapsed >= step.timeout_s * TIMEOUT_FRACTION
        status = AttemptStatus.TIMED_OUT if timed_out else AttemptStatus.FAILED
        if isinstance(exc, StrategyError):
            output = exc.output if isinstance(exc, StrategyFailure) else ""
            return AttemptResult(status, str(exc), output, permanent=exc.permanent)
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return AttemptResult(status, f"strategy {strategy.name!r} raised {type(exc).__name__}: {exc}", trace)
    result = bounded.value
    facts = dict(result.facts)
    if result.outcome is AttemptStatus.SUCCEEDED:
        return AttemptResult(AttemptStatus.SUCCEEDED, result.detail, result.output, facts)
    if result.outcome is AttemptStatus.SKIPPED:
        return AttemptResult(AttemptStatus.SKIPPED, result.detail, result.output, facts, permanent=True)
    return AttemptResult(AttemptStatus.FAILED, result.detail, result.output, facts)


def verify(strategy: Strategy, context: StrategyContext, step: Step, check: Callable[[], CheckSpec],
           probe_timeout_s: float, stop: threading.Event, required: int) -> AttemptResult | None:
    """Verify an executed step; None when the strategy is never verified (VerifyMode.NONE).

    ``check`` builds the component's effective check *after* the step's facts were persisted, so a
    failover is verified against the new target. ``required`` passes in a row are needed."""
    mode = strategy.verification
    if mode is VerifyMode.NONE:
        return None
    clock = context.clock
    if mode is VerifyMode.OWN:
        own = StrategyContext.create(context.component, incident_id=context.incident_id,
                                     step_index=context.step_index, attempt=context.attempt,
                                     timeout_s=step.verify.deadline_s, clock=clock, probe=context.probe,
                                     send=context.send)
        probe = _own_probe(strategy, own)
    else:
        spec = check()
        probe = lambda timeout_s: context.probe(spec, timeout_s)  # noqa: E731 - a one-line probe
    outcome = verify_until(probe, step.verify, mode=mode.value, stop=stop, clock=clock,
                           probe_timeout_s=probe_timeout_s, required=required)
    return from_verification(outcome, stop)


def from_verification(outcome: Verification, stop: threading.Event) -> AttemptResult:
    """The attempt's record after ``outcome``."""
    status = AttemptStatus.SUCCEEDED if outcome.passed else AttemptStatus.FAILED_VERIFICATION
    result = AttemptResult(status, outcome.reason, verification=outcome.as_record(), results=outcome.passing())
    result.interrupted = not outcome.passed and stop.is_set()
    return result


def _own_probe(strategy: Strategy, context: StrategyContext) -> Callable[[float], CheckResult]:
    """The strategy's own verify() as a probe; its answer becomes a check result of the new target."""

    def probe(_timeout_s: float) -> CheckResult:
        started = context.clock.monotonic()
        ok = bool(strategy.verify(context))
        return CheckResult(ok=ok, latency_ms=(context.clock.monotonic() - started) * 1000,
                           checked_at=context.clock.now(), error=None if ok else f"{strategy.name} verify failed")

    return probe
