"""Early warning, pure: the detector fed scripted and simulated results on a moved clock, and the
tracker's UP <-> DEGRADED moves around it."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.core.check_result import CheckResult
from orchestrator.core.clock import FakeClock
from orchestrator.core.errors import IllegalTransitionError
from orchestrator.core.states import ComponentState as S
from orchestrator.degradation.early_warning import (
    EarlyWarning,
    EarlyWarningSettings,
    Evidence,
    percentile,
    seed_minutes,
    settings_from,
)
from orchestrator.health.tracker import LEGAL_TRANSITIONS, Tracker, TrackerConfig

START = datetime(2026, 1, 1, tzinfo=UTC)
TIMEOUT_S = 2.0


class Feed:
    """A detector and its own clock: ``feed(latencies)`` plays results ``step_s`` apart."""

    def __init__(self, settings: EarlyWarningSettings | None = None, *, baseline: tuple[float, ...] = (),
                 step_s: float = 1.0) -> None:
        self.detector = EarlyWarning(settings or EarlyWarningSettings(), TIMEOUT_S, seed_minutes(baseline))
        self.at, self.step_s, self.degraded = START, step_s, False
        self.changes: list[tuple[int, bool, str]] = []  # (result number, degraded, reason)
        self.n = 0

    def feed(self, latencies, ok: bool = True) -> None:
        for latency in latencies:
            self.one(latency, ok)

    def one(self, latency: float, ok: bool = True) -> None:
        self.n += 1
        verdict = self.detector.observe(ok, latency, self.at, degraded=self.degraded)
        if verdict.degraded != self.degraded:
            self.changes.append((self.n, verdict.degraded, verdict.reason))
        self.degraded = verdict.degraded
        self.at += timedelta(seconds=self.step_s)


# -- a healthy, noisy service never turns degraded ---------------------------------------------------


def _noisy(rng: random.Random, median_ms: float, sigma: float, outliers: float) -> float:
    """Lognormal-ish latency around ``median_ms``, with ``outliers`` of the results 5x the median."""
    if rng.random() < outliers:
        return 5 * median_ms * math.exp(rng.gauss(0, 0.1))
    return median_ms * math.exp(rng.gauss(0, sigma))


@pytest.mark.parametrize("median_ms", [20, 30, 40])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_healthy_noisy_service_never_turns_degraded_in_10_minutes(median_ms: float, seed: int) -> None:
    """6,000 results (one every 0.1 s), no baseline to start with: the first 3 minutes are judged by
    the floor alone. Sigma 0.35 and 2% outliers at 5x: two outliers in the window are common (the
    p95 of 20 results is their second slowest), which the p50 guard must not let through."""
    rng = random.Random(seed)
    feed = Feed(step_s=0.1)
    feed.feed(_noisy(rng, median_ms, 0.35, 0.02) for _ in range(6000))
    assert feed.changes == []
    assert feed.detector.baseline_ms == pytest.approx(median_ms, rel=0.15)  # it learnt the service


def test_without_the_p50_guard_the_same_service_would_fire() -> None:
    """The guard is what keeps the test above green: p95 alone fires on two stray outliers."""
    rng = random.Random(1)
    feed = Feed(EarlyWarningSettings(p50_fraction=0.0), step_s=0.1)
    feed.feed(_noisy(rng, 40, 0.35, 0.02) for _ in range(6000))
    assert feed.changes


# -- thresholds --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("settings", "baseline", "timeout_s", "expected"), [
    pytest.param({}, None, 2.0, 100.0, id="no-baseline-floor"),
    pytest.param({}, 10.0, 2.0, 100.0, id="fast-service-floor"),
    pytest.param({}, 40.0, 2.0, 160.0, id="k-times-baseline"),
    pytest.param({"k": 6}, 40.0, 2.0, 240.0, id="k-override"),
    pytest.param({}, 600.0, 2.0, 1600.0, id="capped-at-0.8-timeout"),
    pytest.param({}, None, 0.1, 80.0, id="short-timeout-below-floor"),
    pytest.param({"latency_floor_ms": 300}, 40.0, 2.0, 300.0, id="floor-override"),
])
def test_threshold(settings: dict, baseline: float | None, timeout_s: float, expected: float) -> None:
    assert EarlyWarningSettings(**settings).threshold_ms(baseline, timeout_s) == pytest.approx(expected)


def test_slow_results_degrade_with_a_reason_naming_p95_and_the_baseline() -> None:
    feed = Feed(baseline=(40, 41, 39))
    feed.feed([40] * 10)
    feed.feed([480] * 10)  # p95 480 ms, but the p50 of the 20 (the 10th) is still 40 ms
    assert feed.changes == []
    feed.one(480)
    assert feed.changes == [(21, True, "p95 480 ms vs baseline 40 ms (threshold 160 ms)")]


def test_without_a_baseline_only_the_floor_applies() -> None:
    feed = Feed()  # no minutes yet
    feed.feed([90] * 20)  # 2x the would-be baseline, below the floor
    assert feed.changes == []
    feed.feed([150] * 20)
    assert feed.changes and feed.changes[0][2] == "p95 150 ms, no baseline yet (threshold 100 ms)"


def test_a_fast_service_is_not_degraded_below_the_floor() -> None:
    feed = Feed(baseline=(5, 5, 5))
    feed.feed([60] * 40)  # 12x its baseline, but under 100 ms
    assert feed.changes == []


def test_errors_degrade_an_answering_component() -> None:
    feed = Feed(baseline=(20, 20, 20))
    feed.feed([20] * 16)
    feed.feed([20] * 3, ok=False)
    assert feed.changes == []  # 3 of 19: 16%
    feed.one(20, ok=False)
    assert feed.changes == [(20, True, "error rate 20% over the last 20 checks")]


def test_no_verdict_before_min_samples() -> None:
    feed = Feed()
    feed.feed([900] * 9)
    assert feed.changes == []
    feed.one(900)
    assert [c[0] for c in feed.changes] == [10]


# -- hysteresis ----------------------------------------------------------------------------------------


def test_leaving_needs_clear_samples_in_a_row_well_below_the_threshold() -> None:
    feed = Feed(baseline=(40, 40, 40))  # threshold 160, clear below 128 ms
    feed.feed([400] * 20)
    assert feed.degraded
    feed.feed([140] * 40)  # between 0.8 x threshold and the threshold: it stays degraded
    assert feed.degraded
    # p95 of 20 is the second slowest: clear from the 19th fast result on, then 5 in a row
    feed.feed([40] * 22)
    assert feed.degraded
    feed.one(40)
    assert not feed.degraded
    assert feed.changes[-1][0] == 20 + 40 + 23
    assert feed.changes[-1][2] == ("p95 40 ms (threshold 160 ms), error rate 0% over the last 20 checks, "
                                   "clear for 5 checks")


def test_a_slow_result_breaks_the_clear_streak() -> None:
    feed = Feed(EarlyWarningSettings(window=5, min_samples=5, clear_samples=3), baseline=(40, 40, 40))
    feed.feed([400] * 5)
    feed.feed([40] * 6)  # clear from the 5th on: 2 in a row
    feed.one(300)
    feed.feed([40] * 6)  # the 300 ms result leaves the window after 5: 2 in a row again
    assert feed.degraded
    feed.one(40)
    assert not feed.degraded


def test_errors_must_fall_below_half_the_rate_to_leave() -> None:
    feed = Feed(baseline=(20, 20, 20))
    feed.feed([20] * 20, ok=False)
    assert feed.degraded
    feed.feed([20] * 18)  # 2 failures of 20 = 10%: not below half of 20%
    assert feed.degraded
    feed.feed([20] * 5)  # one failure left, then none: clear for 5
    assert not feed.degraded


def test_disabled_never_degrades_and_lets_a_degraded_one_go() -> None:
    feed = Feed(EarlyWarningSettings(enabled=False))
    feed.feed([1500] * 40, ok=False)
    assert feed.changes == []
    feed.degraded = True  # as restored from the database, degraded before it was disabled
    feed.one(20)
    assert feed.changes == [(41, False, "early warning disabled")]


# -- the baseline --------------------------------------------------------------------------------------


def test_an_outlier_minute_does_not_move_the_baseline() -> None:
    feed = Feed(step_s=10.0)  # 6 results a minute
    for minute in range(10):
        feed.feed([400 if minute == 4 else 30] * 6)
    feed.one(30)  # closes the last minute
    assert len(feed.detector.evidence.minute_p50s) == 10
    assert feed.detector.baseline_ms == 30


def test_minutes_while_degraded_are_left_out_of_the_baseline() -> None:
    feed = Feed(baseline=(30, 30, 30), step_s=10.0)
    feed.feed([30] * 12)  # two good minutes
    feed.feed([500] * 60)  # degraded for 10 minutes
    assert feed.degraded
    assert set(feed.detector.evidence.minute_p50s) == {30}
    assert feed.detector.baseline_ms == 30


def test_the_baseline_waits_for_enough_minutes_and_keeps_a_bounded_history() -> None:
    detector = EarlyWarning(EarlyWarningSettings(baseline_minutes=5), TIMEOUT_S, seed_minutes([10, 20]))
    assert detector.baseline_ms is None
    detector = EarlyWarning(EarlyWarningSettings(baseline_minutes=5), TIMEOUT_S,
                            seed_minutes([900, 900, 900, 10, 20, 30, 40, None, 50]))
    assert detector.evidence.minute_p50s == (900.0, 10.0, 20.0, 30.0, 40.0, 50.0)[-5:]
    assert detector.baseline_ms == 30


def test_reset_forgets_the_window_but_not_the_baseline() -> None:
    detector = EarlyWarning(EarlyWarningSettings(), TIMEOUT_S, Evidence(minute_p50s=(30, 30, 30)))
    for i in range(20):
        detector.observe(True, 900, START + timedelta(seconds=i), degraded=False)
    detector.reset()
    assert detector.evidence == Evidence(minute_p50s=(30.0, 30.0, 30.0))
    assert not detector.observe(True, 900, START, degraded=False).degraded  # too little evidence now


def test_percentile_is_nearest_rank() -> None:
    values = sorted(range(1, 21))
    assert (percentile(values, 0.95), percentile(values, 0.5)) == (19, 10)


# -- settings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "message"), [
    ({"k": 1}, "k: must be > 1"),
    ({"k": "fast"}, "k: must be a number"),
    ({"enabled": "perhaps"}, "enabled: must be true or false"),
    ({"window": 2}, "window: must be >= 5"),
    ({"min_samples": 30}, "min_samples: must not exceed window (20)"),
    ({"clear_samples": 8, "window": 6, "min_samples": 5}, "clear_samples: must not exceed window (6)"),
    ({"error_rate": 1.5}, "error_rate: must be <= 1"),
    ({"sensitivity": 3}, "sensitivity: unknown setting (known: enabled, window,"),
    ("k=6", "must be a mapping"),
])
def test_bad_settings_name_the_field(overrides: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        settings_from(overrides)
    assert str(info.value).startswith(message)


def test_overrides_are_the_fields_given_coerced() -> None:
    assert settings_from({"k": "6", "enabled": "false"}).overrides() == {"enabled": False, "k": 6.0}
    assert settings_from({}).overrides() == {}


# -- the tracker ---------------------------------------------------------------------------------------

INTERVAL_S = 1.0


def _tracker(clock: FakeClock, **early_warning: object) -> Tracker:
    config = TrackerConfig(interval_s=INTERVAL_S, timeout_s=0.5, failure_threshold=3, success_threshold=2,
                           early_warning=EarlyWarningSettings(**early_warning))
    return Tracker(config, clock.now(), evidence=seed_minutes([20, 20, 20]))


def _play(tracker: Tracker, clock: FakeClock, script: list[tuple[int, float, bool]]) -> list[str]:
    """``(count, latency_ms, ok)`` runs of results, one a second → ``"from>to: reason"`` of each change."""
    out = []
    for count, latency, ok in script:
        for _ in range(count):
            clock.advance(INTERVAL_S)
            change = tracker.observe(CheckResult(ok=ok, latency_ms=latency, checked_at=clock.now(),
                                                 error=None if ok else "timeout after 0.5s"), clock.now())
            if change is not None:
                out.append(f"{change.from_state.value}>{change.to_state.value}: {change.reason}")
    return out


def test_up_degraded_up() -> None:
    clock = FakeClock()
    tracker = _tracker(clock)
    changes = _play(tracker, clock, [(2, 20, True), (20, 20, True), (20, 300, True), (30, 20, True)])
    assert [c.split(":")[0] for c in changes] == ["unknown>up", "up>degraded", "degraded>up"]
    assert changes[1] == "up>degraded: p95 300 ms vs baseline 20 ms (threshold 100 ms)"
    assert tracker.state is S.UP


def test_thresholds_take_precedence_degraded_then_down() -> None:
    clock = FakeClock()
    tracker = _tracker(clock)
    changes = _play(tracker, clock, [(20, 20, True), (12, 350, True), (3, 500, False)])
    assert [c.split(":")[0] for c in changes] == ["unknown>up", "up>degraded", "degraded>down"]
    assert changes[-1] == "degraded>down: 3 consecutive failures: timeout after 0.5s"


def test_errors_below_the_failure_threshold_degrade_an_up_component() -> None:
    clock = FakeClock()
    tracker = _tracker(clock)
    changes = _play(tracker, clock, [(20, 20, True)] + [(2, 20, False), (3, 20, True)] * 2)
    assert changes[-1] == "up>degraded: error rate 20% over the last 20 checks"
    assert tracker.next_delay_s(random.Random(0)) == INTERVAL_S  # passing again: the normal cadence
    _play(tracker, clock, [(1, 20, False)])
    assert tracker.next_delay_s(random.Random(0)) == TrackerConfig(interval_s=INTERVAL_S).retry_interval_s


def test_after_down_up_the_window_starts_afresh() -> None:
    """Slow results before DOWN must not make it DEGRADED the moment it is UP again."""
    clock = FakeClock()
    tracker = _tracker(clock)
    _play(tracker, clock, [(20, 20, True), (15, 400, True), (3, 500, False)])
    assert tracker.state is S.DOWN
    changes = _play(tracker, clock, [(2, 20, True)])
    assert [c.split(":")[0] for c in changes] == ["down>up"]
    assert tracker.evidence.samples == ()  # nothing from before DOWN
    assert _play(tracker, clock, [(30, 20, True)]) == []


def test_a_restored_degraded_component_stays_degraded_until_clear() -> None:
    clock = FakeClock()
    config = TrackerConfig(interval_s=INTERVAL_S, timeout_s=0.5)
    tracker = Tracker(config, clock.now(), state=S.DEGRADED, consecutive_successes=5)
    assert _play(tracker, clock, [(13, 20, True)]) == []  # 10 to judge at all, then 3 of 5 clear
    assert _play(tracker, clock, [(2, 20, True)])[0].startswith("degraded>up: p95 20 ms")


def test_disabled_components_go_from_up_to_down_as_before() -> None:
    clock = FakeClock()
    tracker = _tracker(clock, enabled=False)
    changes = _play(tracker, clock, [(20, 20, True), (20, 450, True), (3, 500, False)])
    assert [c.split(":")[0] for c in changes] == ["unknown>up", "up>down"]


def test_degraded_transitions_in_the_table() -> None:
    assert {(S.UP, S.DEGRADED), (S.DEGRADED, S.UP), (S.DEGRADED, S.DOWN), (S.DEGRADED, S.FLAPPING),
            (S.DEGRADED, S.PAUSED), (S.DEGRADED, S.MAINTENANCE)} <= LEGAL_TRANSITIONS
    # a component coming back is UP first; DEGRADED is entered from UP only
    for source in (S.UNKNOWN, S.DOWN, S.FLAPPING, S.PAUSED, S.MAINTENANCE):
        assert (source, S.DEGRADED) not in LEGAL_TRANSITIONS


def test_degraded_can_be_paused_and_resumes_unknown() -> None:
    clock = FakeClock()
    tracker = Tracker(TrackerConfig(interval_s=INTERVAL_S), clock.now(), state=S.DEGRADED)
    assert tracker.pause(clock.now()).to_state is S.PAUSED
    assert tracker.resume(clock.now()).to_state is S.UNKNOWN
    with pytest.raises(IllegalTransitionError):
        tracker._transition(S.DEGRADED, clock.now(), "no evidence")  # UNKNOWN -> DEGRADED is refused


def test_a_degraded_component_can_start_flapping() -> None:
    clock = FakeClock()
    tracker = Tracker(TrackerConfig(interval_s=INTERVAL_S, timeout_s=0.5, failure_threshold=5), clock.now(),
                      state=S.DEGRADED)
    changes = _play(tracker, clock, [(1, 20, True), (1, 20, False)] * 10)
    assert any(c.startswith("degraded>flapping") for c in changes)
