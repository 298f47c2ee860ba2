"""The typed, immutable models of recovery_strategies.json; every field documented with its default.

docs/recovery_strategies.md documents each field. Loading (layering and validation) is in
:mod:`orchestrator.plans.load`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from orchestrator.components.definition import check_name
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import NotFoundError
from orchestrator.degradation.policy import DegradationPolicy
from orchestrator.incidents.alerts import AlertRouting
from orchestrator.incidents.routing import Notifications
from orchestrator.plugins.contract import Strategy

#: Seconds, written as "500ms", "10s", "5m", "1h", "2d" or a number.
Duration = Annotated[float, BeforeValidator(parse_duration)]
Positive = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
#: Seconds an automatic run waits before its first decision (``limits.settle``), so failures that arrive
#: one check apart are judged together by the blast-radius and dependency guards.
DEFAULT_SETTLE_S = 2.0
#: Actions in one crash loop after which the flapping guard escalates instead of acting again.
DEFAULT_ESCALATE_ACTIONS = 3
#: Seconds a crash loop may be held by the flapping guard before it escalates to a person (10 min):
#: a guard ends in an action or a person, never in an open-ended wait.
DEFAULT_ESCALATE_AFTER_S = 600.0
#: Step settings that ``defaults`` may set for every step.
STEP_SETTINGS = ("attempts", "backoff", "timeout", "verify", "approval")


class _Model(BaseModel):
    # strict: a plan file is JSON, so a count is a JSON number and a switch is true/false; "3" or true
    # for ``attempts`` is a mistake to report, not to coerce. Durations still accept "10s" (their
    # validator runs first), and numbers where a float is wanted.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Backoff(_Model):
    """Delay before retry n: a random value in [0, min(cap, base * 2**(n-1))] ("full jitter")."""

    base_s: Duration = Field(1.0, alias="base")
    cap_s: Duration = Field(60.0, alias="cap")

    @model_validator(mode="after")
    def _order(self) -> Backoff:
        if self.cap_s < self.base_s:
            raise ValueError("cap must be at least base")
        return self


class Verify(_Model):
    """After an action: check every ``interval`` until ``successes`` passes in a row, or ``deadline``."""

    interval_s: Positive = Field(1.0, alias="interval")
    successes: int = Field(2, ge=1, le=100)
    deadline_s: Positive = Field(30.0, alias="deadline")


class Approval(_Model):
    """Ask a human (``incidents approve ID``) before the step runs."""

    required: bool = False
    timeout_s: Positive = Field(900.0, alias="timeout")
    on_timeout: Literal["escalate", "proceed"] = "escalate"


class Step(_Model):
    """One step of a plan: a strategy, its params and how the executor runs it."""

    strategy: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None
    attempts: int = Field(3, ge=1, le=100)
    backoff: Backoff = Field(default_factory=Backoff)
    timeout_s: Positive = Field(60.0, alias="timeout")
    verify: Verify = Field(default_factory=Verify)
    approval: Approval = Field(default_factory=Approval)
    _strategy: Strategy | None = PrivateAttr(default=None)

    @property
    def label(self) -> str:
        """``name`` if given, else the strategy name."""
        return self.name or self.strategy

    def make_strategy(self) -> Strategy:
        """The strategy instance with params validated at load."""
        assert self._strategy is not None, "steps are built by parse_plans"
        return self._strategy


class Budget(_Model):
    """At most ``max_actions`` recovery actions per component within ``window``; then escalate."""

    max_actions: int = Field(5, ge=1)
    window_s: Positive = Field(3600.0, alias="window")


class Plan(_Model):
    steps: list[Step] = Field(min_length=1)
    budget: Budget = Field(default_factory=Budget)
    description: str = ""


class Breaker(_Model):
    """Recovery breaker per component: opens after ``threshold`` failed recoveries in a row."""

    threshold: int = Field(3, ge=1)
    open_base_s: Positive = Field(300.0, alias="open_base")
    open_cap_s: Positive = Field(3600.0, alias="open_cap")


class CrashLoop(_Model):
    """A component that fails again soon after a verified recovery waits before the next action
    (like Kubernetes' restart backoff), and one that keeps cycling counts as flapping."""

    #: wait before acting after the first quick re-failure; doubles with each further one
    base_s: Positive = Field(10.0, alias="base")
    #: longest wait
    cap_s: Positive = Field(300.0, alias="cap")
    #: a failure later than this after the previous incident closed starts afresh (no wait)
    reset_after_s: Positive = Field(600.0, alias="reset_after")
    #: this many incidents within ``reset_after`` make the component flapping: one action per episode
    flap_incidents: int = Field(3, ge=2)
    #: a crash loop (flapping, or fail-recover cycles) that already had this many actions escalates
    #: instead of acting again: the actions are not holding, a person must look
    escalate_actions: int = Field(DEFAULT_ESCALATE_ACTIONS, ge=1, le=100)
    #: a crash loop held by the flapping guard escalates this long after the loop began at the latest
    escalate_after_s: Positive = Field(DEFAULT_ESCALATE_AFTER_S, alias="escalate_after", le=86400)

    @model_validator(mode="after")
    def _order(self) -> CrashLoop:
        if self.cap_s < self.base_s:
            raise ValueError("cap must be at least base")
        return self


class Limits(_Model):
    #: Actions in flight at once across all components; None (the default) scales with the fleet:
    #: max(4, 10% of the components), see orchestrator.recovery.slots.
    max_concurrent_recoveries: int | None = Field(None, ge=1)
    #: At or above this fraction of components down at once, act on none (likely the network or us).
    max_unhealthy_fraction: float = Field(0.5, gt=0, le=1)
    #: The fraction rule applies only when at least this many components are registered.
    min_components: int = Field(4, ge=1)
    #: ... and only when at least this many are down: a few components of a small fleet failing
    #: together (3 of 6) are each recovered; a mass outage is many components at once.
    min_down: int = Field(4, ge=1)
    #: Wait before an automatic run's first decision; shorter reacts sooner, but the guards then see
    #: less of a fleet-wide failure (see docs/recovery_strategies.md#limits).
    settle_s: Duration = Field(DEFAULT_SETTLE_S, alias="settle", ge=0, le=300)
    breaker: Breaker = Field(default_factory=Breaker)
    crash_loop: CrashLoop = Field(default_factory=CrashLoop)


class StepDefaults(_Model):
    """Only to validate the ``defaults`` section; its values are merged into each step before parsing."""

    attempts: int | None = Field(None, ge=1, le=100)
    backoff: Backoff | None = None
    timeout: Positive | None = None
    verify: Verify | None = None
    approval: Approval | None = None


class PlanSet(_Model):
    """The whole validated file."""

    version: Literal[1]
    defaults: StepDefaults = Field(default_factory=StepDefaults)
    limits: Limits = Field(default_factory=Limits)
    notifications: Notifications = Field(default_factory=Notifications)
    degradation: DegradationPolicy = Field(default_factory=DegradationPolicy)
    #: how a posted alert names its component (docs/alerts.md)
    alerts: AlertRouting = Field(default_factory=AlertRouting)
    plans: dict[str, Plan]
    _source: str = PrivateAttr(default="")

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, bool):  # True == 1 in Python, but `"version": true` is not version 1
            raise ValueError("expected 1")
        return value

    @field_validator("plans")
    @classmethod
    def _plan_names(cls, plans: dict[str, Plan]) -> dict[str, Plan]:
        # Components name their plan with `--plan NAME`: a plan no name can reach is a mistake.
        for name in plans:
            check_name(name, "plan name")
        return plans

    @property
    def source(self) -> str:
        """Where the file was read from."""
        return self._source

    def get(self, name: str) -> Plan:
        """The plan called ``name``; NotFoundError listing the plan names otherwise."""
        if name not in self.plans:
            raise NotFoundError(f"no plan named {name!r} in {self._source or 'the plan file'}; "
                                f"plans: {', '.join(sorted(self.plans)) or 'none'}")
        return self.plans[name]
