"""The recovery circuit breaker: stop automating a component whose recoveries keep failing.

One "failure" here is one exhausted recovery plan. After ``failure_threshold`` of them in a row the
breaker opens and automation stops for ``open_base_s``; then exactly one half-open try is allowed.
If that try fails the breaker opens again for twice as long (up to ``open_cap_s``); if it succeeds
the breaker closes and the period resets. Pure: callers pass ``now`` (read once per decision) and
store :meth:`CircuitBreaker.to_dict` in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from orchestrator.core.errors import IllegalTransitionError


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_C, _O, _H = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
#: Every (from, to) pair :meth:`CircuitBreaker._transition` accepts; anything else is a bug.
LEGAL_TRANSITIONS: frozenset[tuple[BreakerState, BreakerState]] = frozenset(
    {(_C, _O), (_O, _H), (_H, _C), (_H, _O), (_O, _C)}  # (_O, _C): an operator's reset
)


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """One state change, for the log, the database and notifications."""

    from_state: BreakerState
    to_state: BreakerState
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Permit:
    """The answer of :meth:`CircuitBreaker.check`: may a recovery run now, and why (not)."""

    allowed: bool
    reason: str
    transition: BreakerTransition | None = None


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Breaker settings; ValueError naming the field when one is out of range."""

    failure_threshold: int = 3  # consecutive exhausted plans that open the breaker
    open_base_s: float = 300.0  # first open period
    open_cap_s: float = 3600.0  # the doubling stops here

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {self.failure_threshold}")
        if self.open_base_s <= 0:
            raise ValueError(f"open_base_s must be > 0, got {self.open_base_s}")
        if self.open_cap_s < self.open_base_s:
            raise ValueError(f"open_cap_s must be >= open_base_s ({self.open_base_s}), got {self.open_cap_s}")


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got {now!r}")
    return now


class CircuitBreaker:
    """One component's recovery breaker. Not thread-safe: one owner decides for one component."""

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        state: BreakerState = BreakerState.CLOSED,
        consecutive_failures: int = 0,
        open_period_s: float | None = None,
        opened_until: datetime | None = None,
    ) -> None:
        self.config = config or BreakerConfig()
        self._state = BreakerState(state)
        if self._state is not BreakerState.CLOSED and opened_until is None:
            raise ValueError(f"a {self._state.value} breaker needs opened_until")
        self._failures = consecutive_failures
        self._period_s = open_period_s or self.config.open_base_s
        self._until = _aware(opened_until) if opened_until else None

    @property
    def state(self) -> BreakerState:
        """The current state."""
        return self._state

    @property
    def opened_until(self) -> datetime | None:
        """End of the current (or last) open period; None while closed."""
        return self._until

    @property
    def open_period_s(self) -> float:
        """Length of the current (or last) open period; the next re-open doubles it."""
        return self._period_s

    @property
    def consecutive_failures(self) -> int:
        """Exhausted plans in a row since the last success or close."""
        return self._failures

    def check(self, now: datetime) -> Permit:
        """May a recovery run at ``now``? Grants the single half-open try when the period is over."""
        if self._state is BreakerState.CLOSED:
            return Permit(True, "breaker closed")
        if self._state is BreakerState.HALF_OPEN:
            return Permit(False, "breaker half-open: the one trial recovery is still running")
        assert self._until is not None, "an open breaker always has opened_until (the constructor insists)"
        if _aware(now) < self._until:
            return Permit(False, f"breaker open until {self._until.isoformat()}")
        transition = self._transition(BreakerState.HALF_OPEN, now, "open period over: one trial recovery")
        return Permit(True, transition.reason, transition)

    def allow(self, now: datetime) -> bool:
        """Shorthand for ``check(now).allowed`` (use :meth:`check` to log the transition)."""
        return self.check(now).allowed

    def record_success(self, now: datetime) -> BreakerTransition | None:
        """A recovery succeeded: closes a half-open breaker; resets the count when closed."""
        self._failures = 0
        if self._state is BreakerState.HALF_OPEN:
            return self._transition(BreakerState.CLOSED, now, "trial recovery succeeded")
        return None  # while open nothing was allowed to run, so a success proves nothing here

    def record_failure(self, now: datetime) -> BreakerTransition | None:
        """A recovery plan was exhausted: may open (or re-open, with a doubled period) the breaker."""
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN:
            self._period_s = min(self._period_s * 2, self.config.open_cap_s)
            return self._transition(BreakerState.OPEN, now, "trial recovery failed")
        if self._state is BreakerState.CLOSED and self._failures >= self.config.failure_threshold:
            self._period_s = self.config.open_base_s
            return self._transition(BreakerState.OPEN, now, f"{self._failures} consecutive failed recoveries")
        return None

    def reset(self, now: datetime, reason: str = "reset by operator") -> BreakerTransition | None:
        """Close the breaker by hand; None when it is already closed."""
        self._failures = 0
        if self._state is BreakerState.CLOSED:
            return None
        return self._transition(BreakerState.CLOSED, now, reason)

    def _transition(self, to: BreakerState, now: datetime, reason: str) -> BreakerTransition:
        if (self._state, to) not in LEGAL_TRANSITIONS:
            raise IllegalTransitionError(self._state, to, "breaker")
        now = _aware(now)
        if to is BreakerState.OPEN:
            self._until = now + timedelta(seconds=self._period_s)
            reason = f"{reason}; open for {self._period_s:g}s"
        elif to is BreakerState.CLOSED:
            self._failures, self._period_s, self._until = 0, self.config.open_base_s, None
        transition = BreakerTransition(self._state, to, now, reason)
        self._state = to
        return transition

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able state (ISO datetimes) for the database."""
        return {
            "state": self._state.value,
            "consecutive_failures": self._failures,
            "open_period_s": self._period_s,
            "opened_until": self._until.isoformat() if self._until else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: BreakerConfig | None = None) -> CircuitBreaker:
        """Rebuild a breaker from :meth:`to_dict` output; ValueError on unknown keys or bad values."""
        unknown = set(data) - {"state", "consecutive_failures", "open_period_s", "opened_until"}
        if unknown:
            raise ValueError(f"unknown breaker keys: {sorted(unknown)}")
        until = data.get("opened_until")
        return cls(
            config,
            state=BreakerState(data.get("state", "closed")),
            consecutive_failures=int(data.get("consecutive_failures", 0)),
            open_period_s=float(data["open_period_s"]) if data.get("open_period_s") else None,
            opened_until=datetime.fromisoformat(until) if until else None,
        )
