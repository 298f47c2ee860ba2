"""The Strategy contract that recovery plugins implement, and the entry-point registry that finds them.

A plugin is a :class:`Strategy` subclass registered in the ``orchestrator.strategies`` entry-point group.
Built-ins register exactly like third-party plugins; nothing here keeps a list of names.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from orchestrator.clock import SYSTEM_CLOCK, Clock
from orchestrator.errors import InputError, NotFoundError, StrategyError
from orchestrator.health.spec import CheckSpec
from orchestrator.redact import redact

ENTRY_POINT_GROUP = "orchestrator.strategies"
#: Output kept per step at most; the tail is usually what explains a failure, so the head is cut.
MAX_OUTPUT_CHARS = 16 * 1024
#: ``{component.name}``, ``{vars.KEY}``, ``{replicas}``; ``{{`` and ``}}`` are literal braces.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w]*(?:\.[A-Za-z0-9_][\w.-]*)?)\}")


class VerifyMode(StrEnum):
    """How the executor decides whether a step worked."""

    CHECK = "check"  # re-run the component's own health check (the default)
    OWN = "own"  # call the strategy's verify(context): its target changed (failover)
    NONE = "none"  # nothing to verify: such a step can never resolve an incident


class StepOutcome(StrEnum):
    """How one execution of a step ended; the database stores ``.value``."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    ABANDONED = "abandoned"  # set only by the executor, for a step whose owner died mid-way


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

    @classmethod
    def create(cls, component: ComponentView, *, incident_id: int, step_index: int = 0, attempt: int = 1,
               timeout_s: float = 60.0, clock: Clock = SYSTEM_CLOCK, dry_run: bool = False) -> StrategyContext:
        """Build a context whose deadline is ``timeout_s`` from now and whose logger is bound."""
        return cls(component, incident_id, step_index, attempt, clock.monotonic() + timeout_s, clock,
                   bind_logger(component.name, incident_id, step_index), dry_run)

    def remaining_s(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - self.clock.monotonic())


def _lookup(key: str, context: StrategyContext, extra: Mapping[str, object]) -> str:
    comp = context.component
    if key in extra:
        return str(extra[key])
    fixed = {"component.name": comp.name, "component.url": comp.url, "incident.id": context.incident_id,
             "attempt": context.attempt}
    if key in fixed:
        return str(fixed[key])
    if key == "component.backup_url" and comp.backup_url:
        return comp.backup_url
    space, _, name = key.partition(".")
    source = {"vars": comp.vars, "labels": comp.labels}.get(space)
    if source is not None and name in source:
        return source[name]
    hint = f" (component {comp.name!r} has no {space[:-1]} {name!r}; add it with --{space[:-1]} {name}=…)" \
        if source is not None else ""
    raise StrategyError(f"placeholder {{{key}}} cannot be filled{hint}", permanent=True)


def render_text(template: str, context: StrategyContext, extra: Mapping[str, object] | None = None,
                escape: Callable[[str], str] | None = None) -> str:
    """Fill the placeholders of one string (each value passed through ``escape`` if given, e.g. URL
    quoting); an unknown or missing placeholder → StrategyError(permanent=True) naming it."""
    values = extra or {}

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        value = _lookup(match.group(1), context, values)
        return escape(value) if escape else value

    return _PLACEHOLDER.sub(fill, template)


def render(argv_template: list[str], context: StrategyContext, extra: Mapping[str, object] | None = None) -> list[str]:
    """Fill placeholders into each argv element separately: a value never splits or joins elements."""
    return [render_text(element, context, extra) for element in argv_template]


def placeholders(template: str) -> list[str]:
    """The placeholder names used in ``template`` (for load-time validation of plans)."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)]


def check_template(template: str, extra_names: tuple[str, ...] = ()) -> str:
    """Raise ValueError naming a placeholder no context could ever fill; return ``template``."""
    for key in placeholders(template):
        space = key.partition(".")[0]
        known = key in extra_names or key in ("component.name", "component.url", "component.backup_url",
                                               "incident.id", "attempt")
        if not known and not (space in ("vars", "labels") and "." in key):
            allowed = ", ".join(["component.name", "component.url", "component.backup_url", "vars.KEY",
                                 "labels.KEY", "incident.id", "attempt", *extra_names])
            raise ValueError(f"unknown placeholder {{{key}}} (known: {allowed}; write {{{{ for a literal brace)")
    return template


@dataclass(frozen=True)
class StepResult:
    """The record of one execution: outcome, a one-line detail, captured output and facts for reports."""

    outcome: StepOutcome
    detail: str
    started_at: datetime
    finished_at: datetime
    output: str = ""
    facts: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
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
        return cls(StepOutcome.SUCCEEDED, detail, started_at, finished_at, output, facts or {})

    @classmethod
    def failed(cls, detail: str, *, started_at: datetime, finished_at: datetime, output: str = "",
               facts: Mapping[str, object] | None = None) -> StepResult:
        """A step that ran and did not work."""
        return cls(StepOutcome.FAILED, detail, started_at, finished_at, output, facts or {})

    @classmethod
    def skipped(cls, reason: str, *, at: datetime) -> StepResult:
        """A step that did not run (a guard, or dry-run); ``reason`` says why."""
        return cls(StepOutcome.SKIPPED, reason, at, at)


class StrategyFailure(StrategyError):
    """Raised by a strategy when its command or call failed; carries the (redacted, capped) output."""

    def __init__(self, message: str, *, permanent: bool = False, output: str = "") -> None:
        super().__init__(" ".join(redact(message).split())[:500], permanent=permanent)
        self.output = redact(output)[-MAX_OUTPUT_CHARS:]


class StrategyParams(BaseModel):
    """Base of every Params model: immutable, and unknown keys are rejected when the plan loads."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


class InstalledStrategy(NamedTuple):
    name: str
    target: str  # "module:Class"
    distribution: str | None


class StrategyPluginError(InputError):
    """Raised when an installed strategy plugin cannot be imported or is not a Strategy subclass."""


_loaded: dict[str, type[Strategy]] = {}


def _entry_points() -> dict[str, EntryPoint]:
    # Read afresh each time: a plugin installed while the process runs is found without a restart.
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        other = found.get(ep.name)
        if other is not None and other.value != ep.value:
            raise StrategyPluginError(f"strategy {ep.name!r} is registered twice: {other.value} and {ep.value}")
        found.setdefault(ep.name, ep)
    return found


def installed_strategies() -> list[InstalledStrategy]:
    """Every registered strategy with its import target and distribution, sorted by name."""
    return [InstalledStrategy(ep.name, ep.value, ep.dist.name if ep.dist else None)
            for ep in sorted(_entry_points().values(), key=lambda e: e.name)]


def load_strategy(name: str) -> type[Strategy]:
    """The class registered as ``name``; imported on first use and cached. NotFoundError lists names."""
    if name in _loaded:
        return _loaded[name]
    eps = _entry_points()
    if name not in eps:
        raise NotFoundError(f"unknown strategy {name!r}; installed: {', '.join(sorted(eps)) or 'none'}")
    try:
        cls = eps[name].load()
    except Exception as exc:  # any import-time failure of third-party code is reported, not raised raw
        raise StrategyPluginError(f"strategy plugin {name!r} ({eps[name].value}) failed to import: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyPluginError(
            f"strategy plugin {name!r} ({eps[name].value}) is not a subclass of orchestrator.strategy.Strategy")
    if getattr(cls, "__abstractmethods__", None) or not issubclass(cls.Params, BaseModel):
        raise StrategyPluginError(
            f"strategy plugin {name!r} ({eps[name].value}) must implement execute() and set Params to a "
            "pydantic model")
    _loaded[name] = cls
    return cls
