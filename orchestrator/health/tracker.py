"""The per-component health state machine: thresholds, flapping, soft-state retries, probe backoff.

Fed one :class:`CheckResult` at a time, a :class:`Tracker` decides the component's
:class:`ComponentState` and returns a :class:`Transition` when it changes. It also says how long to
wait before the next check. Pure: no I/O, callers pass ``now`` (read once per decision) and persist
the counters it exposes so a restarted daemon carries on.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.components.definition import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_SUCCESS_THRESHOLD,
    default_max_probe_interval_s,
    default_retry_interval_s,
    default_timeout_s,
)
from orchestrator.core.check_result import CheckResult
from orchestrator.core.errors import IllegalTransitionError
from orchestrator.core.states import ComponentState
from orchestrator.degradation.early_warning import EarlyWarning, EarlyWarningSettings, Evidence
from orchestrator.health.flap import DEFAULT_HIGH, DEFAULT_LOW, DEFAULT_WINDOW, FlapDetector
from orchestrator.resilience.backoff import equal_jitter_delay

S = ComponentState
_OBSERVED = (S.UNKNOWN, S.UP, S.DEGRADED, S.DOWN, S.FLAPPING)  # states that check results may change
#: answering states: the early warning judges them (and only moves between the two)
_ANSWERING = (S.UP, S.DEGRADED)
#: Every (from, to) pair :meth:`Tracker._transition` accepts. An operator's pause or maintenance can
#: interrupt any observed state, and always ends in UNKNOWN: the old evidence is stale. DEGRADED is
#: entered from UP only: a component coming back (from UNKNOWN, DOWN, FLAPPING) is UP first, with a
#: fresh early-warning window.
LEGAL_TRANSITIONS: frozenset[tuple[S, S]] = frozenset(
    {(S.UNKNOWN, S.UP), (S.UNKNOWN, S.DOWN), (S.UP, S.DOWN), (S.DOWN, S.UP)}
    | {(S.UP, S.DEGRADED), (S.DEGRADED, S.UP), (S.DEGRADED, S.DOWN)}
    | {(s, S.FLAPPING) for s in (S.UNKNOWN, S.UP, S.DEGRADED, S.DOWN)}
    | {(S.FLAPPING, S.UP), (S.FLAPPING, S.DOWN)}
    | {(s, held) for s in _OBSERVED for held in (S.PAUSED, S.MAINTENANCE)}
    | {(S.PAUSED, S.UNKNOWN), (S.MAINTENANCE, S.UNKNOWN)}
)


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change: ``reason`` is a one-line explanation (``"3 consecutive failures: timeout"``)."""

    from_state: ComponentState
    to_state: ComponentState
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """How one component is judged; ValueError naming the field when a value is out of range."""

    interval_s: float  # between checks while nothing is wrong
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD  # consecutive failures that make it DOWN
    success_threshold: int = DEFAULT_SUCCESS_THRESHOLD  # consecutive successes that make it UP
    retry_interval_s: float | None = None  # after a first failure; None means default_retry_interval_s
    startup_grace_s: float = 0.0  # after start/resume, failures do not make it DOWN
    #: longest wait between probes while DOWN (never below interval_s); None means
    #: default_max_probe_interval_s(interval_s): min(30 s, 5 × interval)
    down_backoff_cap_s: float | None = None
    flap_window: int = DEFAULT_WINDOW
    flap_high: float = DEFAULT_HIGH
    flap_low: float = DEFAULT_LOW
    timeout_s: float | None = None  # the check's timeout (caps the latency threshold); None: the default
    early_warning: EarlyWarningSettings = field(default_factory=EarlyWarningSettings)

    def __post_init__(self) -> None:
        if self.retry_interval_s is None:
            object.__setattr__(self, "retry_interval_s", default_retry_interval_s(self.interval_s))
        if self.timeout_s is None:
            object.__setattr__(self, "timeout_s", default_timeout_s(self.interval_s))
        if self.down_backoff_cap_s is None:
            object.__setattr__(self, "down_backoff_cap_s", default_max_probe_interval_s(self.interval_s))
        for name in ("interval_s", "retry_interval_s", "down_backoff_cap_s", "timeout_s"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)!r}")
        if not math.isfinite(self.startup_grace_s) or self.startup_grace_s < 0:
            raise ValueError(f"startup_grace_s must be >= 0, got {self.startup_grace_s!r}")
        for name in ("failure_threshold", "success_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        FlapDetector(self.flap_window, self.flap_high, self.flap_low)  # raises on bad flap settings


def _count_phrase(n: int, one: str, many: str) -> str:
    return f"{n} consecutive {one if n == 1 else many}"


class Tracker:
    """One component's health state. Not thread-safe: the judge thread owns every tracker."""

    def __init__(
        self,
        config: TrackerConfig,
        started_at: datetime,
        *,
        state: ComponentState = ComponentState.UNKNOWN,
        since: datetime | None = None,
        consecutive_failures: int = 0,
        consecutive_successes: int = 0,
        down_checks: int = 0,
        flap_history: Iterable[bool] = (),
        flap_episode: int = 0,
        evidence: Evidence = Evidence(),
        started_mono: float | None = None,
    ) -> None:
        """``started_at`` starts the grace period, measured from ``started_mono`` on the monotonic clock
        when given (the daemon always gives it: a wall clock stepped back must not hold every failure
        "in grace" for as long as the step, invariant 7); the keyword arguments restore persisted state
        (``evidence``, the early warning's window and baseline, is kept in memory only: seeded from the
        rollups at start, carried over when the definition changes)."""
        self.config = config
        self._state = ComponentState(state)
        self._since = since or started_at
        self._failures, self._successes = consecutive_failures, consecutive_successes
        self._down_checks = down_checks  # failed checks while DOWN: the probe backoff exponent
        self._flap = FlapDetector(
            config.flap_window, config.flap_high, config.flap_low,
            history=flap_history, flapping=self._state is S.FLAPPING,
        )  # fmt: skip
        self._flap_episode = flap_episode
        self._grace_until = started_at + timedelta(seconds=config.startup_grace_s)
        self._grace_until_mono = None if started_mono is None else started_mono + config.startup_grace_s
        self._early = EarlyWarning(config.early_warning, config.timeout_s, evidence)
        #: the early warning's own verdict, apart from a check's warning (an expiring certificate): a
        #: component may be DEGRADED for either, and leaves it only when neither holds
        self._early_degraded = self._state is S.DEGRADED
        self._warning: str | None = None  # the last passing check's warning, if any

    @property
    def state(self) -> ComponentState:
        """The current state."""
        return self._state

    @property
    def since(self) -> datetime:
        """When the current state was entered."""
        return self._since

    @property
    def consecutive_failures(self) -> int:
        """Failed results in a row."""
        return self._failures

    @property
    def consecutive_successes(self) -> int:
        """Passed results in a row."""
        return self._successes

    @property
    def down_checks(self) -> int:
        """Failed checks since going DOWN."""
        return self._down_checks

    @property
    def flap_ratio(self) -> float:
        """Weighted state-change ratio, 0..1."""
        return self._flap.ratio

    @property
    def flap_history(self) -> tuple[bool, ...]:
        """Recent verdicts, oldest first."""
        return self._flap.history

    @property
    def flap_episode(self) -> int:
        """Times FLAPPING was entered."""
        return self._flap_episode

    @property
    def evidence(self) -> Evidence:
        """The early warning's window and baseline (for a successor tracker)."""
        return self._early.evidence

    @property
    def baseline_ms(self) -> float | None:
        """The early warning's latency baseline, None until there is one."""
        return self._early.baseline_ms

    def observe(self, result: CheckResult, now: datetime, mono: float | None = None) -> Transition | None:
        """Count one result; return the transition it causes, or None. ``mono`` (the monotonic time of
        the decision) judges the grace period when the tracker was started with ``started_mono``.

        1. Update the consecutive counters and the flap history (always, even when paused).
        2. While PAUSED or in MAINTENANCE stop there: an operator owns the state.
        3. While UP or DEGRADED, feed the early warning.
        4. Decide by flapping first, then by the thresholds (DOWN), then, for a component that was
           answering, by the early warning and the check's own warning (UP, or DEGRADED while either
           holds).
        """
        self._count(result.ok)
        if self._state not in _OBSERVED:
            return None
        verdict = None
        if self._state in _ANSWERING:
            verdict = self._early.observe(result.ok, result.latency_ms, now, degraded=self._early_degraded)
            self._early_degraded = verdict.degraded
        target, reason = self._decide(result, self._in_grace(now, mono))
        if verdict is not None and target is not S.DOWN and target is not S.FLAPPING:
            target, reason = self._answering_verdict(result, verdict.degraded, verdict.reason)
        if result.ok:
            self._warning = result.warning
        if target is None or target is self._state:
            return None
        return self._transition(target, now, reason)

    def _answering_verdict(self, result: CheckResult, early_degraded: bool, early_reason: str) -> tuple[S, str]:
        """UP or DEGRADED for an answering component: a passing check's warning degrades it as the
        early warning does; a failed check keeps the last warning (it says nothing about it)."""
        warning = result.warning if result.ok else self._warning
        if warning:
            return S.DEGRADED, warning
        if early_degraded:
            return S.DEGRADED, early_reason
        if self._warning and result.ok:
            return S.UP, early_reason or f"warning cleared (was: {self._warning})"
        return S.UP, early_reason

    def next_delay_s(self, rng: random.Random) -> float:
        """Seconds until the next check of this component.

        ``retry_interval_s`` after a failure while not yet DOWN (confirm it fast, like a Nagios soft
        state); while DOWN and still failing, ``interval_s * 2**k`` capped at ``down_backoff_cap_s``
        with equal jitter (k = failed checks since going DOWN); ``interval_s`` otherwise, including
        right after the first success while DOWN.

        The DOWN backoff is protection (a dead service is not hammered), so it names the invariant it
        must never break (docs/guarantees.md I1, DESIGN.md 6): a component that answers again is seen
        UP within its detection bound. Hence the cap, min(30 s, 5 × interval) by default.
        """
        cfg = self.config
        if self._state is S.DOWN and self._failures > 0:
            cap_s = max(cfg.down_backoff_cap_s, cfg.interval_s)
            return equal_jitter_delay(self._down_checks + 1, cfg.interval_s, cap_s, rng)
        if self._failures > 0 and self._state in (S.UNKNOWN, S.UP, S.DEGRADED):
            return cfg.retry_interval_s
        return cfg.interval_s

    def pause(self, now: datetime, reason: str = "") -> Transition:
        """Stop judging (results are still counted); IllegalTransitionError if paused or in maintenance."""
        return self._transition(S.PAUSED, now, f"paused: {reason}" if reason else "paused")

    def resume(self, now: datetime, mono: float | None = None) -> Transition:
        """PAUSED → UNKNOWN with fresh counters and a new grace period."""
        return self._restart(S.PAUSED, now, "resumed", mono)

    def enter_maintenance(self, now: datetime, reason: str = "") -> Transition:
        """Planned work: results are counted but never open incidents."""
        return self._transition(S.MAINTENANCE, now, f"maintenance: {reason}" if reason else "maintenance")

    def leave_maintenance(self, now: datetime, mono: float | None = None) -> Transition:
        """MAINTENANCE → UNKNOWN with fresh counters and a new grace period."""
        return self._restart(S.MAINTENANCE, now, "maintenance over", mono)

    def _count(self, ok: bool) -> None:
        if ok:
            self._successes, self._failures, self._down_checks = self._successes + 1, 0, 0
        else:
            self._failures, self._successes = self._failures + 1, 0
            if self._state is S.DOWN:
                self._down_checks += 1
        self._flap.observe(ok)

    def _decide(self, result: CheckResult, in_grace: bool) -> tuple[S | None, str]:
        ratio = f"{self._flap.ratio:.0%} state change over the last {self.config.flap_window} checks"
        if self._state is S.FLAPPING:
            if self._flap.flapping:
                return None, ""
            # Stable again, but stay FLAPPING until the thresholds say which way it settled.
            target, reason = self._by_thresholds(result, in_grace)
            return target, f"stable ({ratio}), {reason}"
        if self._flap.flapping and not in_grace:
            return S.FLAPPING, f"flapping: {ratio}"
        return self._by_thresholds(result, in_grace)

    def _by_thresholds(self, result: CheckResult, in_grace: bool) -> tuple[S | None, str]:
        if self._successes >= self.config.success_threshold:
            return S.UP, _count_phrase(self._successes, "success", "successes")
        if self._failures >= self.config.failure_threshold and not in_grace:
            reason = _count_phrase(self._failures, "failure", "failures")
            return S.DOWN, f"{reason}: {result.error}" if result.error else reason
        return None, ""

    def _in_grace(self, now: datetime, mono: float | None) -> bool:
        if mono is not None and self._grace_until_mono is not None:
            return mono < self._grace_until_mono
        return now < self._grace_until

    def _restart(self, expected: S, now: datetime, reason: str, mono: float | None = None) -> Transition:
        if self._state is not expected:
            raise IllegalTransitionError(self._state, S.UNKNOWN, f"tracker ({reason})")
        transition = self._transition(S.UNKNOWN, now, reason)
        self._failures = self._successes = self._down_checks = 0
        self._flap.reset()
        self._grace_until = now + timedelta(seconds=self.config.startup_grace_s)
        if mono is not None:
            self._grace_until_mono = mono + self.config.startup_grace_s
        return transition

    def _transition(self, to: S, now: datetime, reason: str) -> Transition:
        if (self._state, to) not in LEGAL_TRANSITIONS:
            raise IllegalTransitionError(self._state, to, "tracker")
        transition = Transition(self._state, to, now, reason)
        if to is S.UP and self._state not in _ANSWERING:
            self._early.reset()  # coming back: the slow samples from before must not degrade it at once
            self._early_degraded = False
        self._state, self._since = to, now
        if to is S.FLAPPING:
            self._flap_episode += 1
        elif to is S.DOWN:
            self._down_checks = 1  # the failure that tripped it is the first failed DOWN check
        return transition
