"""The Strategy contract that recovery plugins implement: the class, its context and its result.

Third-party plugins import it as ``orchestrator.strategy`` (the public path); built-ins do the same.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import StrategyError
from orchestrator.core.redaction import redact
from orchestrator.core.states import AttemptStatus

#: Output kept per step at most; the tail is usually what explains a failure, so the head is cut.
MAX_OUTPUT_CHARS = 16 * 1024
#: Component fields a strategy may declare in ``Strategy.persists`` (``vars.NAME`` sets one var).
PERSISTABLE_FIELDS = ("active_target", "replicas", "vars.")

#: ``probe(check, timeout_s)``: run one health check of a CheckSpec (or an http URL) now.
Probe = Callable[[CheckSpec | str, float], CheckResult]
#: ``send(urls, webhooks, title, body, timeout_s, *, payload=None, timestamp=None)``: deliver one message to
#: Apprise URLs and signed webhooks; one redacted delivery record (``kind``, ``target``, ``ok``, ``detail``)
#: per target, never raising for a failed delivery.
Send = Callable[..., Sequence[Any]]


def _unwired_probe(check: CheckSpec | str, timeout_s: float) -> CheckResult:
    raise StrategyError("this context has no probe: the executor gives one (in tests, build the context with "
                        "orchestrator.testing.make_context)", permanent=True)


def _unwired_send(*args: Any, **kwargs: Any) -> Sequence[Any]:
    raise StrategyError("this context has no sender: the executor gives one (in tests, build the context with "
                        "orchestrator.testing.make_context)", permanent=True)


class VerifyMode(StrEnum):
    """How the executor decides whether a step worked."""

    CHECK = "check"  # re-run the component's own health check (the default)
    OWN = "own"  # call the strategy's verify(context): its target changed (failover)
    NONE = "none"  # nothing to verify: such a step can never resolve an incident


#: The outcomes a strategy's result may have (of the one outcome enum, the journal's AttemptStatus): the
#: executor alone sets the others (timed out, failed verification, abandoned after a crash).
RESULT_OUTCOMES = frozenset({AttemptStatus.SUCCEEDED, AttemptStatus.FAILED, AttemptStatus.SKIPPED})


@dataclass(frozen=True)
class ComponentView:
    """A read-only snapshot of the component a step acts on."""

    name: str
    url: str
    check: CheckSpec
    vars: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    backup_url: str | None = None
    active_target: Literal["primary", "backup"] = "primary"
    replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    #: the component's secret values: what a strategy must redact from anything it sends or reports
    #: (``vars`` holds the secret vars too, for placeholders)
    secrets: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Read-only views: a strategy must not be able to change what the executor later persists.
        object.__setattr__(self, "vars", MappingProxyType(dict(self.vars)))
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))


class _StepLogAdapter(logging.LoggerAdapter):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        e = self.extra or {}
        return f"component={e['component']} incident={e['incident']} step={e['step']} {msg}", kwargs


def bind_logger(component: str, incident_id: int, step_index: int) -> logging.LoggerAdapter:
    """A logger whose lines start with ``component=… incident=… step=…``."""
    extra = {"component": component, "incident": incident_id, "step": step_index}
    return _StepLogAdapter(logging.getLogger("orchestrator.strategy"), extra)


@dataclass(frozen=True)
class StrategyContext:
    """Everything a strategy may read while it runs; no database session, nothing mutable."""

    component: ComponentView
    incident_id: int
    step_index: int
    attempt: int
    deadline: float  # on clock.monotonic()
    clock: Clock
    logger: logging.LoggerAdapter
    dry_run: bool = False
    #: run one health check now (failover verifies its new target with it)
    probe: Probe = _unwired_probe
    #: commands started for the step report their pid here (pass it to run_command's on_spawn)
    on_spawn: Callable[[int], None] | None = None
    #: where commands started for the step record their exit status (pass it to run_command's exit_dir),
    #: so an owner that dies or stops mid-step is followed by one that knows how the command ended
    exit_dir: str | None = None
    #: deliver a message (the notify strategy); the daemon's own sender, with its timeouts and redaction
    send: Send = _unwired_send

    @classmethod
    def create(cls, component: ComponentView, *, incident_id: int, step_index: int = 0, attempt: int = 1,
               timeout_s: float = 60.0, clock: Clock = SYSTEM_CLOCK, dry_run: bool = False,
               probe: Probe | None = None, on_spawn: Callable[[int], None] | None = None,
               exit_dir: str | None = None, send: Send | None = None) -> StrategyContext:
        """Build a context whose deadline is ``timeout_s`` from now and whose logger is bound. ``probe``
        and ``send`` are the caller's to give (the executor gives the daemon's checkers and sender)."""
        return cls(component, incident_id, step_index, attempt, clock.monotonic() + timeout_s, clock,
                   bind_logger(component.name, incident_id, step_index), dry_run, probe or _unwired_probe, on_spawn,
                   exit_dir, send or _unwired_send)

    def remaining_s(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - self.clock.monotonic())


@dataclass(frozen=True)
class StepResult:
    """The record of one execution: outcome, a one-line detail, captured output and facts for reports."""

    outcome: AttemptStatus  # one of RESULT_OUTCOMES
    detail: str
    started_at: datetime
    finished_at: datetime
    output: str = ""
    facts: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in RESULT_OUTCOMES:
            raise ValueError(f"a step result is succeeded, failed or skipped, not {self.outcome!r}")
        # Everything in a result ends up stored and logged, so it is redacted and capped here, once.
        line = " ".join(redact(self.detail).split())
        object.__setattr__(self, "detail", line[:500])
        out = redact(self.output)
        object.__setattr__(self, "output", out[-MAX_OUTPUT_CHARS:])
        object.__setattr__(self, "facts", MappingProxyType(dict(self.facts)))

    @classmethod
    def succeeded(cls, detail: str, *, started_at: datetime, finished_at: datetime, output: str = "",
                  facts: Mapping[str, object] | None = None) -> StepResult:
        """A step that did what it set out to do (verification is still the executor's)."""
        return cls(AttemptStatus.SUCCEEDED, detail, started_at, finished_at, output, facts or {})

    @classmethod
    def failed(cls, detail: str, *, started_at: datetime, finished_at: datetime, output: str = "",
               facts: Mapping[str, object] | None = None) -> StepResult:
        """A step that ran and did not work."""
        return cls(AttemptStatus.FAILED, detail, started_at, finished_at, output, facts or {})

    @classmethod
    def skipped(cls, reason: str, *, at: datetime) -> StepResult:
        """A step that did not run (a guard, or dry-run); ``reason`` says why."""
        return cls(AttemptStatus.SKIPPED, reason, at, at)


class StrategyFailure(StrategyError):
    """Raised by a strategy when its command or call failed; carries the (redacted, capped) output."""

    def __init__(self, message: str, *, permanent: bool = False, output: str = "") -> None:
        super().__init__(" ".join(redact(message).split())[:500], permanent=permanent)
        self.output = redact(output)[-MAX_OUTPUT_CHARS:]


class StrategyParams(BaseModel):
    """Base of every Params model: immutable, strict (JSON types as written: ``"3"`` is not a number,
    use Literal rather than Enum and lists rather than tuples), and unknown keys are rejected when the
    plan loads."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Strategy(ABC):
    """One kind of recovery action. Instances are cheap; the executor makes one per step."""

    #: The entry-point name the plans refer to.
    name: ClassVar[str] = ""
    #: Validates the step's ``params`` when the plan file loads.
    Params: ClassVar[type[BaseModel]] = StrategyParams
    #: How the executor verifies the step afterwards.
    verification: ClassVar[VerifyMode] = VerifyMode.CHECK
    #: True if running it again after a crash mid-step cannot do harm.
    idempotent: ClassVar[bool] = False
    #: Facts of a successful execute() the executor writes to the component: fact name → field
    #: (``active_target``, ``replicas`` or ``vars.NAME``; a None value for a var removes it).
    persists: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def __init__(self, params: BaseModel) -> None:
        """Keep validated params; never does I/O."""
        self.params = params

    @abstractmethod
    def execute(self, context: StrategyContext) -> StepResult:
        """Do the action once; raise StrategyError(permanent=…) for a failure it understands."""

    def verify(self, context: StrategyContext) -> bool:
        """For VerifyMode.OWN: True if the new target is healthy; called with execute()'s context."""
        raise NotImplementedError(f"strategy {self.name!r} does not verify by itself")

    def describe(self, context: StrategyContext) -> str:
        """One line saying what execute() would do; used for dry-run and the journal."""
        return f"{self.name} {self.params.model_dump_json()}"
