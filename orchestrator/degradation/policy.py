"""The ``degradation`` section of recovery_strategies.json: rules, hysteresis, feature maps, scopes.

Typed and strict like the rest of the file (unknown keys refused, every error names its JSON path).
The shipped defaults below apply when the file has no ``degradation`` section, or no file is given;
docs/degradation.md documents each field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from orchestrator.core.durations import parse_duration
from orchestrator.core.states import DegradationLevel, level_rank
from orchestrator.degradation.scopes import GLOBAL_SCOPE, parse_selector, selector_text

Duration = Annotated[float, BeforeValidator(parse_duration)]
Positive = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
FeatureValue = bool | int | float | str
RaisedLevel = Literal["degraded", "minimal", "emergency"]
LevelName = Literal["normal", "degraded", "minimal", "emergency"]
#: The shipped database_unreachable rule fires once the database has been unreachable this long: a
#: blip of a second or two (a failover, a restart) is not an emergency for applications.
DATABASE_FOR_S = 15.0
#: Fraction rules need at least this many components in what they judge.
DEFAULT_MIN_COMPONENTS = 4

#: What each ``when`` needs besides ``level``; anything else given is refused.
RULE_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # when: (required, optional)
    "any_critical_down": (frozenset(), frozenset({"criticality"})),
    "unhealthy_fraction": (frozenset({"at_least"}), frozenset({"states", "min_components"})),
    "label_group": (frozenset({"selector", "at_least"}), frozenset({"states", "min_components"})),
    "error_rate": (frozenset({"at_least"}), frozenset({"min_checks"})),
    "latency": (frozenset({"p95_above"}), frozenset({"min_checks"})),
    "check_lateness": (frozenset({"p95_above"}), frozenset({"min_checks"})),
    "database_unreachable": (frozenset(), frozenset()),
}


#: field name → the key a file uses for it
_ALIASES = {"p95_above_s": "p95_above", "for_s": "for"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class Rule(_Model):
    """One condition that raises the level while it holds."""

    when: Literal["any_critical_down", "unhealthy_fraction", "label_group", "error_rate", "latency",
                  "check_lateness", "database_unreachable"]
    level: RaisedLevel
    #: fraction 0..1 (of components for *_fraction/label_group, of checks for error_rate)
    at_least: float | None = Field(None, ge=0, le=1)
    #: the states counted as unhealthy
    states: list[Literal["down", "flapping", "degraded", "unknown"]] = Field(default_factory=lambda: ["down", "flapping", "degraded"])
    #: fewer components than this (in the scope or the group) never fire the rule: in a fleet of three,
    #: one failure is a third of it, not a degradation of the system (as limits.min_components)
    min_components: int = Field(DEFAULT_MIN_COMPONENTS, ge=1)
    selector: str | None = None
    criticality: Literal["critical", "high", "normal", "low"] = "critical"
    p95_above_s: Duration | None = Field(None, alias="p95_above")
    #: fewer checks than this in the window never fire the rule (error_rate, latency, check_lateness)
    min_checks: int = Field(20, ge=1)
    #: the condition must hold this long before the rule fires (0: at once)
    for_s: Duration = Field(0.0, alias="for")

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        return None if value is None else selector_text(parse_selector(value))

    @model_validator(mode="before")
    @classmethod
    def _fields_for_when(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("when") not in RULE_FIELDS:
            return data
        required, optional = RULE_FIELDS[data["when"]]
        given = {_ALIASES.get(name, name) for name in data}
        for name in sorted(required):
            if name not in given:
                raise ValueError(f"{name}: required when {data['when']!r}")
        for name in sorted(given - required - optional - {"when", "level", "for"}):
            raise ValueError(f"{name}: not used when {data['when']!r} (it takes {', '.join(sorted(required | optional)) or 'only level'})")
        return data


class SelfProtection(_Model):
    """The orchestrator's own overload: check lateness (p95 over ``window``) stretches its own checks of
    UP low/normal components, at most 2x (orchestrator.degradation.actions); it never skips a check
    and never holds back a recovery step (invariant 6, never silent)."""

    enabled: bool = True
    degraded_above_s: Positive = Field(1.0, alias="degraded_above")
    minimal_above_s: Positive = Field(5.0, alias="minimal_above")
    window_s: Positive = Field(10.0, alias="window")
    #: the overload level steps down one level per this hold (its own: shedding must end soon after
    #: the lateness does)
    hold_s: Duration = Field(30.0, alias="hold")


class Scope(_Model):
    """A level of its own for the components a label selector picks (``"team=checkout"``)."""

    #: None: the top-level rules, evaluated over this scope's components
    rules: list[Rule] | None = None
    #: per level, features that differ from the top-level map
    features: dict[LevelName, dict[str, FeatureValue]] = Field(default_factory=dict)


def _default_rules() -> list[Rule]:
    return [
        Rule(when="any_critical_down", level="minimal"),
        Rule(when="unhealthy_fraction", at_least=0.10, level="degraded"),
        Rule(when="unhealthy_fraction", at_least=0.25, level="minimal"),
        Rule(when="unhealthy_fraction", at_least=0.50, level="emergency"),
        Rule(when="database_unreachable", level="emergency", for_s=DATABASE_FOR_S),
    ]


def _default_features() -> dict[LevelName, dict[str, FeatureValue]]:
    return {
        "normal": {"caching": True, "analytics": True, "realtime_updates": True, "background_tasks": True},
        "degraded": {"analytics": False, "background_tasks": "essential"},
        "minimal": {"realtime_updates": False, "background_tasks": False},
        "emergency": {"caching": "serve_stale"},
    }


class DegradationPolicy(_Model):
    """The whole section, with the shipped defaults."""

    evaluate_every_s: Positive = Field(2.0, alias="evaluate_every")
    #: consecutive evaluations a higher level must hold before it is published
    confirm: int = Field(2, ge=1, le=100)
    #: while a higher level waits for confirmation, the next evaluation comes this soon
    confirm_interval_s: Positive = Field(0.25, alias="confirm_interval")
    #: the way down: one level at a time, each after the lower level held this long
    hold_s: Duration = Field(120.0, alias="hold")
    #: how long applications may cache an answer before asking again
    ttl_s: Positive = Field(10.0, alias="ttl")
    rules: list[Rule] = Field(default_factory=_default_rules)
    #: per level, what differs from the level below (NORMAL lists every feature)
    features: dict[LevelName, dict[str, FeatureValue]] = Field(default_factory=_default_features)
    scopes: dict[str, Scope] = Field(default_factory=dict)
    self_protection: SelfProtection = Field(default_factory=SelfProtection)

    @field_validator("scopes")
    @classmethod
    def _scope_names(cls, scopes: dict[str, Scope]) -> dict[str, Scope]:
        out = {}
        for name, scope in scopes.items():
            try:
                canonical = selector_text(parse_selector(name))
            except ValueError as exc:
                raise ValueError(f"scopes: {exc}") from None
            if canonical in out:
                raise ValueError(f"scopes: {name!r} names the same selector twice")
            out[canonical] = scope
        return out

    def features_at(self, level: DegradationLevel | str, scope: str = GLOBAL_SCOPE) -> dict[str, FeatureValue]:
        """The whole feature map at ``level``: each level's entries over those of the levels below it."""
        extra = self.scopes[scope].features if scope in self.scopes else {}
        merged: dict[str, FeatureValue] = {}
        for lower in DegradationLevel:
            if level_rank(lower) > level_rank(level):
                break
            merged.update(self.features.get(lower.value, {}))
            merged.update(extra.get(lower.value, {}))
        return merged

    def rules_of(self, scope: str) -> list[Rule]:
        """The rules evaluated for ``scope``."""
        own = self.scopes[scope].rules if scope in self.scopes else None
        return self.rules if own is None else own

    def scope_names(self) -> list[str]:
        """"global" first, then every configured scope."""
        return [GLOBAL_SCOPE, *self.scopes]


DEFAULT_POLICY = DegradationPolicy()
