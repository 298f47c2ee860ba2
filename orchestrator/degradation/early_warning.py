"""Early warning: a component that still answers, but slowly or with errors, is ``degraded``.

A pure detector, one per component, owned by its :class:`~orchestrator.health.tracker.Tracker`: fed
one result at a time (the time passed in), it says whether the component looks degraded and why. The
tracker's thresholds still decide DOWN and take precedence; this only moves a component between UP
and DEGRADED.

1. Evidence: the last ``window`` results (ok, latency), sliding.
2. Baseline: the median of the component's own per-minute p50 latencies over the last
   ``baseline_minutes`` minutes, seeded from ``check_rollups`` at start and kept from results
   afterwards. A minute with a degraded result in it is left out, so a slow period does not raise its
   own baseline, nor do the slow minutes just before it (those with a p50 above the p50 guard). With
   fewer than ``baseline_min_minutes`` minutes there is no baseline yet: only the
   latency floor (and the timeout cap) and the error rate apply.
3. Threshold: ``min(max(latency_floor_ms, k x baseline), timeout_fraction x timeout)``: never below
   the floor, never needing the timeout.
4. Degraded when (with at least ``min_samples`` results) the window's p95 is above the threshold and
   its p50 above ``p50_fraction`` of it, or when ``error_rate`` of the window failed. The p50 guard is
   there because a health check gives few samples: the p95 of 20 results is their second slowest, so
   two stray outliers would otherwise be enough. A slow tail alone is not an early warning; its
   timeouts count as errors.
5. Back to UP only after ``clear_samples`` results in a row with p95 below ``clear_fraction`` of the
   threshold and the error rate below half of ``error_rate`` (hysteresis: no flapping on the edge).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

# The defaults, here and nowhere else (the component definition, the CLI and the docs read them).
#: results in the sliding window
DEFAULT_WINDOW = 20
#: results needed before any verdict
DEFAULT_MIN_SAMPLES = 10
#: threshold = k x baseline (when there is a baseline)
DEFAULT_K = 4.0
#: the threshold is never below this, whatever the baseline
DEFAULT_LATENCY_FLOOR_MS = 100.0
#: ...and never above this fraction of the check's timeout
DEFAULT_TIMEOUT_FRACTION = 0.8
#: the window's p50 must also be above this fraction of the threshold (the whole distribution moved)
DEFAULT_P50_FRACTION = 0.6
#: failed share of the window that makes an answering component degraded
DEFAULT_ERROR_RATE = 0.2
#: leave only when p95 < this x threshold (and the error rate is below half of error_rate)...
DEFAULT_CLEAR_FRACTION = 0.8
#: ...for this many results in a row
DEFAULT_CLEAR_SAMPLES = 5
#: per-minute p50s kept for the baseline (an hour)
DEFAULT_BASELINE_MINUTES = 60
#: minutes of data before there is a baseline
DEFAULT_BASELINE_MIN_MINUTES = 3


class EarlyWarningSettings(BaseModel):
    """How one component's early warning judges; a component's ``early_warning`` overrides any field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    window: int = Field(default=DEFAULT_WINDOW, ge=5, le=1000)
    min_samples: int = Field(default=DEFAULT_MIN_SAMPLES, ge=3)
    k: float = Field(default=DEFAULT_K, gt=1, le=100)
    latency_floor_ms: float = Field(default=DEFAULT_LATENCY_FLOOR_MS, gt=0, le=3_600_000)
    timeout_fraction: float = Field(default=DEFAULT_TIMEOUT_FRACTION, gt=0, le=1)
    p50_fraction: float = Field(default=DEFAULT_P50_FRACTION, ge=0, lt=1)
    error_rate: float = Field(default=DEFAULT_ERROR_RATE, gt=0, le=1)
    clear_fraction: float = Field(default=DEFAULT_CLEAR_FRACTION, gt=0, lt=1)
    clear_samples: int = Field(default=DEFAULT_CLEAR_SAMPLES, ge=1)
    baseline_minutes: int = Field(default=DEFAULT_BASELINE_MINUTES, ge=3, le=1440)
    baseline_min_minutes: int = Field(default=DEFAULT_BASELINE_MIN_MINUTES, ge=1)

    @model_validator(mode="after")
    def _within_window(self) -> EarlyWarningSettings:
        for name in ("min_samples", "clear_samples"):
            if getattr(self, name) > self.window:
                raise ValueError(f"{name}: must not exceed window ({self.window})")
        if self.baseline_min_minutes > self.baseline_minutes:
            raise ValueError(f"baseline_min_minutes: must not exceed baseline_minutes ({self.baseline_minutes})")
        return self

    def overrides(self) -> dict[str, object]:
        """The fields set explicitly (what a component stores), in field order."""
        return {k: v for k, v in self.model_dump().items() if k in self.model_fields_set}

    def threshold_ms(self, baseline_ms: float | None, timeout_s: float) -> float:
        """The p95 above which latency is degraded."""
        wanted = self.latency_floor_ms if baseline_ms is None else max(self.latency_floor_ms, self.k * baseline_ms)
        return min(wanted, self.timeout_fraction * timeout_s * 1000.0)


@dataclass(frozen=True, slots=True)
class Verdict:
    """``degraded`` is what the component looks like now; ``reason`` a one-line why (empty when
    nothing changed or there is too little evidence)."""

    degraded: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a detector has seen, carried into its successor (a changed definition) or seeded."""

    samples: tuple[tuple[bool, float], ...] = ()  # (ok, latency_ms), oldest first
    minute_p50s: tuple[float, ...] = ()  # oldest first


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty list (p95 of 20 values is the 19th)."""
    return values[max(0, math.ceil(fraction * len(values)) - 1)]


class EarlyWarning:
    """One component's detector. Pure and not thread-safe: its tracker's owner calls it."""

    def __init__(self, settings: EarlyWarningSettings, timeout_s: float, evidence: Evidence = Evidence()) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._window: deque[tuple[bool, float]] = deque(evidence.samples, maxlen=settings.window)
        self._minutes: deque[float] = deque(evidence.minute_p50s, maxlen=settings.baseline_minutes)
        self._minute: datetime | None = None  # the minute being collected
        self._minute_ok: list[float] = []  # latencies of its passing results
        self._minute_tainted = False  # it saw the component degraded: not part of the baseline
        self._clear = 0  # clear results in a row while degraded

    @property
    def evidence(self) -> Evidence:
        return Evidence(tuple(self._window), tuple(self._minutes))

    @property
    def baseline_ms(self) -> float | None:
        """Median of the kept per-minute p50s; None until there are ``baseline_min_minutes``."""
        if len(self._minutes) < self.settings.baseline_min_minutes:
            return None
        return statistics.median(self._minutes)

    @property
    def threshold_ms(self) -> float:
        return self.settings.threshold_ms(self.baseline_ms, self.timeout_s)

    def reset(self) -> None:
        """Forget the window (after DOWN → UP: old slow samples must not degrade it again at once) and
        the minute in progress; the baseline stays."""
        self._window.clear()
        self._minute, self._minute_ok, self._minute_tainted = None, [], False
        self._clear = 0

    def observe(self, ok: bool, latency_ms: float, at: datetime, *, degraded: bool) -> Verdict:
        """Count one result of an answering component; ``degraded`` is its state now (the tracker's).

        Returns the state it should be in: unchanged with too little evidence or while disabled and
        not degraded; leaving DEGRADED needs ``clear_samples`` clear results in a row.
        """
        self._count_minute(ok, latency_ms, at, degraded)
        self._window.append((ok, latency_ms))
        s = self.settings
        if not s.enabled:
            return Verdict(False, "early warning disabled" if degraded else "")
        n = len(self._window)
        if n < s.min_samples:
            return Verdict(degraded)
        latencies = sorted(lat for _, lat in self._window)
        p95, p50 = percentile(latencies, 0.95), percentile(latencies, 0.50)
        failures = sum(1 for passed, _ in self._window if not passed)
        rate = failures / n
        threshold = self.threshold_ms
        if not degraded:
            self._clear = 0
            if p95 > threshold and p50 > s.p50_fraction * threshold:
                return self._enter(self._latency_reason(p95, threshold), s.p50_fraction * threshold)
            if rate >= s.error_rate:
                return self._enter(f"error rate {rate:.0%} over the last {n} checks", s.p50_fraction * threshold)
            return Verdict(False)
        clear = p95 < s.clear_fraction * threshold and rate < s.error_rate / 2
        self._clear = self._clear + 1 if clear else 0
        if self._clear >= s.clear_samples:
            self._clear = 0
            return Verdict(False, f"p95 {p95:.0f} ms (threshold {threshold:.0f} ms), error rate {rate:.0%} over "
                                  f"the last {n} checks, clear for {s.clear_samples} checks")
        return Verdict(True)

    def _enter(self, reason: str, slow_ms: float) -> Verdict:
        """Degraded now: the slow minutes that led here (the window reaches back before this verdict)
        leave the baseline, and so does the minute in progress."""
        while self._minutes and self._minutes[-1] > slow_ms:
            self._minutes.pop()
        self._minute_tainted = True
        return Verdict(True, reason)

    def _latency_reason(self, p95: float, threshold: float) -> str:
        baseline = self.baseline_ms
        if baseline is None:
            return f"p95 {p95:.0f} ms, no baseline yet (threshold {threshold:.0f} ms)"
        return f"p95 {p95:.0f} ms vs baseline {baseline:.0f} ms (threshold {threshold:.0f} ms)"

    def _count_minute(self, ok: bool, latency_ms: float, at: datetime, degraded: bool) -> None:
        minute = at.replace(second=0, microsecond=0)
        if minute != self._minute:
            if self._minute_ok and not self._minute_tainted:
                self._minutes.append(statistics.median(self._minute_ok))
            self._minute, self._minute_ok, self._minute_tainted = minute, [], False
        if ok:
            self._minute_ok.append(latency_ms)
        self._minute_tainted = self._minute_tainted or degraded


def seed_minutes(p50s: Iterable[float | None]) -> Evidence:
    """Evidence from stored per-minute p50s (oldest first); empty minutes are skipped."""
    return Evidence(minute_p50s=tuple(float(p) for p in p50s if p is not None and math.isfinite(p) and p >= 0))


def settings_from(overrides: object) -> EarlyWarningSettings:
    """The settings of a component from its overrides (a mapping, or settings already made);
    ValueError ``"k: must be > 1"`` (the field, then why) when they are invalid."""
    if isinstance(overrides, EarlyWarningSettings):
        return overrides
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise ValueError("must be a mapping of setting to value")
    try:
        return EarlyWarningSettings.model_validate(overrides)
    except ValidationError as exc:
        raise ValueError(_explain(exc.errors()[0])) from None


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _explain(err: ErrorDetails) -> str:
    """One pydantic error as ``"field: must be > 1"``."""
    where = ".".join(str(p) for p in err["loc"])
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"{where}: unknown setting (known: {', '.join(EarlyWarningSettings.model_fields)})"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        return f"{where}: must be {_BOUNDS[kind]} {limit:g}"
    if kind.startswith("bool"):
        return f"{where}: must be true or false"
    if kind.startswith("int"):
        return f"{where}: must be a whole number"
    if kind.startswith("float"):
        return f"{where}: must be a number"
    message = err["msg"].removeprefix("Value error, ")
    return message if not where else f"{where}: {message}"
