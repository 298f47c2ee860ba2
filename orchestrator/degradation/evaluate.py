"""Levels from facts: the rules (pure), and the hysteresis that turns computed levels into published ones.

:func:`compute` reads one :class:`Facts` snapshot and says which level a scope's rules ask for and
why. :class:`Hysteresis` is the state machine between that and what applications see:

1. Up: a higher level is published once ``confirm`` consecutive evaluations asked for at least it; it
   goes straight to the lowest level those evaluations agreed on (NORMAL → EMERGENCY in one step is
   allowed).
2. Down: one level at a time, each once every evaluation for ``hold_s`` asked for less. An evaluation
   that asks for the current level (or more) starts the hold again, so a signal flapping every
   evaluation never de-escalates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.core.errors import IllegalTransitionError
from orchestrator.core.states import LEVEL_ORDER, ComponentState, DegradationLevel, level_rank
from orchestrator.degradation.policy import Rule

L = DegradationLevel
_HELD = (ComponentState.PAUSED, ComponentState.MAINTENANCE)


@dataclass(frozen=True)
class Facts:
    """Everything the rules read, taken once per evaluation.

    ``states`` is the live view (id → state); ``members`` the ids of the scope being judged (None: all);
    ``critical`` the ids per criticality; ``groups`` the ids per label selector a rule names. The rates
    are over the signal window (None when too few checks ran)."""

    states: Mapping[int, ComponentState]
    critical: Mapping[str, frozenset[int]] = field(default_factory=dict)
    groups: Mapping[str, frozenset[int]] = field(default_factory=dict)
    checks: int = 0
    error_rate: float | None = None
    latency_p95_ms: float | None = None
    lateness_p95_ms: float | None = None
    database_ok: bool = True


def _members(facts: Facts, ids: frozenset[int] | None) -> list[ComponentState]:
    if ids is None:
        return [s for s in facts.states.values() if s not in _HELD]
    states = facts.states
    return [s for s in (states.get(i) for i in ids) if s is not None and s not in _HELD]


def _fraction(rule: Rule, members: list[ComponentState], what: str) -> str | None:
    counted = {ComponentState(s) for s in rule.states}
    total = len(members)
    if total < rule.min_components or rule.at_least is None:
        return None
    bad = sum(1 for s in members if s in counted)
    if bad and bad >= rule.at_least * total:
        return f"{bad} of {total} {what} {'/'.join(rule.states)} ({bad / total:.0%} >= {rule.at_least:.0%})"
    return None


def _fires(rule: Rule, facts: Facts, scope_ids: frozenset[int] | None) -> str | None:
    """The reason ``rule`` holds now, or None."""
    when = rule.when
    if when == "unhealthy_fraction":
        return _fraction(rule, _members(facts, scope_ids), "components")
    if when == "label_group":
        group = facts.groups.get(rule.selector or "", frozenset())
        ids = group if scope_ids is None else group & scope_ids
        reason = _fraction(rule, _members(facts, ids), f"of {rule.selector}")
        return reason
    if when == "any_critical_down":
        ids = facts.critical.get(rule.criticality, frozenset())
        if scope_ids is not None:
            ids = ids & scope_ids
        down = sorted(i for i in ids if facts.states.get(i) is ComponentState.DOWN)
        return f"{len(down)} {rule.criticality} component{'s' if len(down) != 1 else ''} down" if down else None
    if when == "database_unreachable":
        return None if facts.database_ok else "the orchestrator's database is unreachable"
    if facts.checks < rule.min_checks:
        return None
    if when == "error_rate":
        rate = facts.error_rate
        return (f"error rate {rate:.0%} over {facts.checks} checks (>= {rule.at_least:.0%})"
                if rate is not None and rule.at_least is not None and rate >= rule.at_least else None)
    value = facts.latency_p95_ms if when == "latency" else facts.lateness_p95_ms
    limit_ms = (rule.p95_above_s or 0.0) * 1000
    what = "check latency" if when == "latency" else "check lateness"
    return f"{what} p95 {value:.0f} ms (> {limit_ms:.0f} ms)" if value is not None and value > limit_ms else None


def compute(rules: list[Rule], facts: Facts, scope_ids: frozenset[int] | None = None, *,
            holding: dict[int, datetime] | None = None, now: datetime | None = None) -> tuple[L, list[str]]:
    """The level the rules ask for over ``scope_ids`` (None: every component) and the reasons of the
    rules that fired, highest level first (of rules on the same signal, only the highest one's).

    ``holding`` (rule index → since when its condition holds, kept by the caller between evaluations)
    and ``now`` make a rule with ``for`` fire only once its condition has held that long."""
    fired: dict[tuple[str, str | None, str], tuple[int, str]] = {}
    for index, rule in enumerate(rules):
        reason = _fires(rule, facts, scope_ids)
        if holding is not None and now is not None:
            if reason is None:
                holding.pop(index, None)
            elif rule.for_s and (now - holding.setdefault(index, now)).total_seconds() < rule.for_s:
                continue
        if reason is not None:
            key, rank = (rule.when, rule.selector, rule.criticality), level_rank(rule.level)
            if key not in fired or fired[key][0] < rank:
                fired[key] = (rank, f"{rule.level}: {reason}")
    if not fired:
        return L.NORMAL, []
    ordered = sorted(fired.values(), key=lambda item: -item[0])
    return LEVEL_ORDER[ordered[0][0]], [reason for _, reason in ordered]


#: Every (from, to) pair :meth:`Hysteresis._move` accepts: up by any number of levels, down by one.
LEGAL_TRANSITIONS: frozenset[tuple[L, L]] = frozenset(
    {(a, b) for a in L for b in L if level_rank(b) > level_rank(a)}
    | {(LEVEL_ORDER[i], LEVEL_ORDER[i - 1]) for i in range(1, len(LEVEL_ORDER))}
)


@dataclass(frozen=True)
class LevelChange:
    from_level: L
    to_level: L
    at: datetime


class Hysteresis:
    """Published level of one scope from a stream of computed levels. Pure: callers pass ``now``."""

    def __init__(self, confirm: int, hold_s: float, *, level: L = L.NORMAL, since: datetime | None = None) -> None:
        self.confirm, self.hold_s = confirm, hold_s
        self.level, self.since = L(level), since
        self._up_seen: list[L] = []  # the computed levels of consecutive evaluations above ``level``
        self._below_since: datetime | None = None

    @property
    def held_until(self) -> datetime | None:
        """When the level steps down one if every evaluation until then asks for less (None: no
        evaluation asks for less now)."""
        return None if self._below_since is None else self._below_since + timedelta(seconds=self.hold_s)

    @property
    def pending(self) -> bool:
        """A higher level waits for confirmation: evaluate again soon."""
        return bool(self._up_seen)

    def reconfigure(self, confirm: int, hold_s: float) -> None:
        self.confirm, self.hold_s = confirm, hold_s

    def step(self, computed: L, now: datetime) -> LevelChange | None:
        """Feed one evaluation; the published change it causes, or None."""
        rank, current = level_rank(computed), level_rank(self.level)
        if rank > current:
            self._below_since = None
            self._up_seen.append(computed)
            if len(self._up_seen) >= self.confirm:
                target = min(self._up_seen[-self.confirm:], key=level_rank)
                self._up_seen = []
                return self._move(target, now)
            return None
        self._up_seen = []
        if rank == current:
            self._below_since = None
            return None
        if self._below_since is None:
            self._below_since = now
        if (now - self._below_since).total_seconds() >= self.hold_s:
            self._below_since = now  # the next level down needs a hold of its own
            return self._move(LEVEL_ORDER[current - 1], now)
        return None

    def _move(self, to: L, now: datetime) -> LevelChange:
        if (self.level, to) not in LEGAL_TRANSITIONS:
            raise IllegalTransitionError(self.level, to, "degradation level")
        change = LevelChange(self.level, to, now)
        self.level, self.since = to, now
        return change
