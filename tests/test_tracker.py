"""The per-component tracker: scripted sequences of results and clock moves → transitions."""

from __future__ import annotations

import itertools
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.check_result import CheckResult
from orchestrator.core.clock import FakeClock
from orchestrator.core.errors import IllegalTransitionError
from orchestrator.core.states import ComponentState as S
from orchestrator.health.tracker import LEGAL_TRANSITIONS, Tracker, TrackerConfig

INTERVAL_S = 10.0


class EdgeRandom(random.Random):
    """Always draws the low (or high) end of a uniform range, to pin jitter down to its bounds."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def make(clock: FakeClock, **overrides: object) -> Tracker:
    return Tracker(TrackerConfig(interval_s=INTERVAL_S, **overrides), clock.now())


def result(ok: bool, clock: FakeClock) -> CheckResult:
    return CheckResult(
        ok=ok, latency_ms=3.0, checked_at=clock.now(), error=None if ok else "connection refused"
    )


def play(tracker: Tracker, clock: FakeClock, script: str) -> list[str]:
    """Run ``script`` and return ``"<step>:<from>><to>"`` for each transition (steps count from 1).

    Steps: ``ok``/``fail`` (one interval passes, then a result), ``wait:S``, ``pause``, ``resume``,
    ``maint``, ``unmaint``. ``N*(a b)`` repeats a group N times.
    """
    actions = {"pause": tracker.pause, "resume": tracker.resume}
    actions |= {"maint": tracker.enter_maintenance, "unmaint": tracker.leave_maintenance}
    out = []
    for step, token in enumerate(_expand(script), start=1):
        if token.startswith("wait:"):
            clock.advance(float(token[5:]))
            continue
        if token in ("ok", "fail"):
            clock.advance(INTERVAL_S)
            change = tracker.observe(result(token == "ok", clock), clock.now())
        else:
            change = actions[token](clock.now())
        if change is not None:
            out.append(f"{step}:{change.from_state.value}>{change.to_state.value}")
    return out


_GROUP = re.compile(r"(\d+)\*\(([^()]*)\)")


def _expand(script: str) -> list[str]:
    return _GROUP.sub(lambda m: " ".join([m.group(2)] * int(m.group(1))), script).split()


SCENARIOS = [
    pytest.param({}, "ok", [], S.UNKNOWN, id="one-success-stays-unknown"),
    pytest.param({}, "ok ok", ["2:unknown>up"], S.UP, id="two-successes-make-it-up"),
    pytest.param({}, "ok ok fail fail", ["2:unknown>up"], S.UP, id="two-failures-below-threshold"),
    pytest.param({}, "ok ok fail fail fail", ["2:unknown>up", "5:up>down"], S.DOWN, id="third-failure-down"),
    pytest.param({}, "ok ok fail fail ok fail fail", ["2:unknown>up"], S.UP, id="success-breaks-streak"),
    pytest.param({}, "fail fail fail", ["3:unknown>down"], S.DOWN, id="unknown-straight-to-down"),
    pytest.param({}, "fail fail fail ok", ["3:unknown>down"], S.DOWN, id="one-success-not-enough"),
    pytest.param({}, "3*(fail) ok ok", ["3:unknown>down", "5:down>up"], S.UP, id="two-successes-recover"),
    pytest.param({"failure_threshold": 1}, "ok ok fail", ["2:unknown>up", "3:up>down"], S.DOWN, id="threshold-1"),
    pytest.param({"success_threshold": 1}, "ok", ["1:unknown>up"], S.UP, id="success-threshold-1"),
    pytest.param({"startup_grace_s": 45}, "4*(fail)", [], S.UNKNOWN, id="grace-holds-off-down"),
    pytest.param({"startup_grace_s": 45}, "5*(fail)", ["5:unknown>down"], S.DOWN, id="down-when-grace-ends"),
    pytest.param({"startup_grace_s": 45}, "ok ok", ["2:unknown>up"], S.UP, id="grace-still-allows-up"),
    pytest.param({"startup_grace_s": 1000}, "6*(ok fail)", [], S.UNKNOWN, id="grace-holds-off-flapping"),
    pytest.param({}, "ok ok pause 4*(fail)", ["2:unknown>up", "3:up>paused"], S.PAUSED, id="pause-holds-state"),
    pytest.param(
        {}, "ok ok pause 3*(fail) resume fail fail", ["2:unknown>up", "3:up>paused", "7:paused>unknown"],
        S.UNKNOWN, id="resume-restarts-counters",
    ),
    pytest.param(
        {}, "pause resume 3*(fail)", ["1:unknown>paused", "2:paused>unknown", "5:unknown>down"],
        S.DOWN, id="down-after-resume",
    ),
    pytest.param(
        {"startup_grace_s": 45}, "wait:100 ok ok pause resume 5*(fail)",
        ["3:unknown>up", "4:up>paused", "5:paused>unknown", "10:unknown>down"],
        S.DOWN, id="grace-restarts-on-resume",
    ),
    pytest.param(
        {}, "ok ok maint 4*(fail) unmaint ok ok",
        ["2:unknown>up", "3:up>maintenance", "8:maintenance>unknown", "10:unknown>up"],
        S.UP, id="maintenance-and-back",
    ),
    pytest.param({}, "ok ok 3*(fail ok)", ["2:unknown>up", "8:up>flapping"], S.FLAPPING, id="alternation-flaps"),
    pytest.param(
        {}, "ok ok 6*(fail ok) 15*(ok)", ["2:unknown>up", "8:up>flapping", "29:flapping>up"],
        S.UP, id="flapping-left-to-up-when-stable",
    ),
    pytest.param(
        {}, "3*(fail) 6*(ok fail) 15*(fail)", ["3:unknown>down", "9:down>flapping", "30:flapping>down"],
        S.DOWN, id="flapping-left-to-down-when-stable",
    ),
    pytest.param({}, "4*(ok fail)", ["7:unknown>flapping"], S.FLAPPING, id="unknown-can-flap"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "script", "expected", "final"), SCENARIOS)
def test_scenarios(overrides: dict, script: str, expected: list[str], final: S) -> None:
    clock = FakeClock()
    tracker = make(clock, **overrides)
    assert play(tracker, clock, script) == expected
    assert tracker.state is final


def test_flapping_settles_only_when_thresholds_agree() -> None:
    clock = FakeClock()
    tracker = make(clock)
    play(tracker, clock, "ok ok 6*(fail ok) 14*(ok)")
    assert tracker.flap_ratio >= 0.25 and tracker.state is S.FLAPPING
    # The ratio drops below the low mark on the next success, and two successes in a row say UP.
    change = tracker.observe(result(True, clock), clock.now())
    assert change is not None and change.to_state is S.UP
    assert change.reason.startswith("stable (21% state change over the last 21 checks), ")


def test_transition_records_time_and_reason() -> None:
    clock = FakeClock()
    tracker = make(clock)
    ups = play(tracker, clock, "ok")
    clock.advance(INTERVAL_S)
    up = tracker.observe(result(True, clock), clock.now())
    assert ups == [] and up is not None
    assert (up.from_state, up.to_state, up.at, up.reason) == (
        S.UNKNOWN,
        S.UP,
        clock.now(),
        "2 consecutive successes",
    )
    assert tracker.since == clock.now()
    play(tracker, clock, "fail fail")
    clock.advance(INTERVAL_S)
    down = tracker.observe(result(False, clock), clock.now())
    assert down is not None and down.reason == "3 consecutive failures: connection refused"


def test_singular_reason_and_missing_error() -> None:
    clock = FakeClock()
    tracker = make(clock, success_threshold=1, failure_threshold=1)
    up = tracker.observe(result(True, clock), clock.now())
    down = tracker.observe(CheckResult(ok=False, latency_ms=1.0, checked_at=clock.now()), clock.now())
    assert (up.reason, down.reason) == ("1 consecutive success", "1 consecutive failure")


def test_paused_results_are_still_counted() -> None:
    clock = FakeClock()
    tracker = make(clock)
    assert play(tracker, clock, "pause fail fail ok fail") == ["1:unknown>paused"]
    assert (tracker.consecutive_failures, tracker.consecutive_successes) == (1, 0)
    assert tracker.flap_ratio > 0
    tracker.resume(clock.now())
    assert (tracker.consecutive_failures, tracker.flap_ratio) == (0, 0.0)


def test_flap_episode_counts_each_entry() -> None:
    clock = FakeClock()
    tracker = make(clock)
    play(tracker, clock, "ok ok 6*(fail ok) 15*(ok)")
    assert tracker.flap_episode == 1
    play(tracker, clock, "6*(fail ok)")
    assert tracker.state is S.FLAPPING and tracker.flap_episode == 2


def delays(tracker: Tracker, clock: FakeClock, script: str, rng: random.Random) -> list[float]:
    out = []
    for token in script.split():
        play(tracker, clock, token)
        out.append(tracker.next_delay_s(rng))
    return out


@pytest.mark.parametrize(
    ("high", "expected"),
    [
        pytest.param(True, [10, 10, 1, 1, 20, 40, 60, 60, 10, 10], id="ceilings-double-to-cap"),
        pytest.param(False, [10, 10, 1, 1, 10, 20, 30, 30, 10, 10], id="floors-are-half-ceilings"),
    ],
)
def test_next_delay_retries_fast_then_backs_off_while_down(high: bool, expected: list[float]) -> None:
    # ok ok → interval; first failures → retry interval; DOWN → backoff; first success → interval.
    clock = FakeClock()
    tracker = make(clock, down_backoff_cap_s=60)
    got = delays(tracker, clock, "ok ok fail fail fail fail fail fail ok ok", EdgeRandom(high))
    assert got == expected
    assert tracker.state is S.UP


@given(seed=st.integers(min_value=0, max_value=2**32), failures=st.integers(min_value=1, max_value=12))
def test_down_delay_jitter_within_bounds(seed: int, failures: int) -> None:
    clock = FakeClock()
    tracker = make(clock, down_backoff_cap_s=60)
    play(tracker, clock, f"{2 + failures}*(fail)")
    ceiling = min(60.0, INTERVAL_S * 2**tracker.down_checks)
    assert ceiling / 2 <= tracker.next_delay_s(random.Random(seed)) <= ceiling


def test_retry_interval_defaults_and_override() -> None:
    assert TrackerConfig(interval_s=10).retry_interval_s == 1.0
    assert TrackerConfig(interval_s=2).retry_interval_s == pytest.approx(0.4)
    clock = FakeClock()
    tracker = make(clock, retry_interval_s=2.5)
    play(tracker, clock, "ok ok fail")
    assert tracker.next_delay_s(random.Random(0)) == 2.5


def test_backoff_cap_never_shortens_a_long_interval() -> None:
    clock = FakeClock()
    tracker = Tracker(TrackerConfig(interval_s=120, down_backoff_cap_s=60), clock.now())
    play(tracker, clock, "fail fail fail fail")
    assert tracker.next_delay_s(EdgeRandom(high=True)) == 120


ILLEGAL = [pair for pair in itertools.product(S, repeat=2) if pair not in LEGAL_TRANSITIONS]


@pytest.mark.parametrize(("src", "dst"), ILLEGAL, ids=[f"{a.value}>{b.value}" for a, b in ILLEGAL])
def test_illegal_transitions_are_refused(src: S, dst: S) -> None:
    clock = FakeClock()
    tracker = Tracker(TrackerConfig(interval_s=INTERVAL_S), clock.now(), state=src)
    with pytest.raises(IllegalTransitionError, match=f"{src.value} -> {dst.value}"):
        tracker._transition(dst, clock.now(), "test")
    assert tracker.state is src


@pytest.mark.parametrize(
    ("script", "action"),
    [
        pytest.param("ok ok", "resume", id="resume-when-not-paused"),
        pytest.param("pause", "pause", id="pause-twice"),
        pytest.param("pause", "maint", id="maintenance-while-paused"),
        pytest.param("maint", "resume", id="resume-ends-only-a-pause"),
        pytest.param("pause", "unmaint", id="leave-maintenance-while-paused"),
    ],
)
def test_operator_actions_out_of_order_are_refused(script: str, action: str) -> None:
    clock = FakeClock()
    tracker = make(clock)
    play(tracker, clock, script)
    before = tracker.state
    with pytest.raises(IllegalTransitionError):
        play(tracker, clock, action)
    assert tracker.state is before


def test_restored_tracker_carries_on() -> None:
    clock = FakeClock()
    went_down = clock.now()
    clock.advance(3600)
    tracker = Tracker(
        TrackerConfig(interval_s=INTERVAL_S), clock.now(),
        state=S.DOWN, since=went_down, consecutive_failures=7, down_checks=3, flap_episode=4,
    )  # fmt: skip
    assert tracker.next_delay_s(EdgeRandom(high=True)) == 30  # 10 * 2**3 capped at min(30 s, 5 x 10 s)
    assert play(tracker, clock, "ok") == [] and tracker.since == went_down
    assert play(tracker, clock, "ok") == ["1:down>up"]
    assert tracker.flap_episode == 4


def test_restored_flapping_tracker_keeps_flapping() -> None:
    clock = FakeClock()
    history = [True, False] * 10 + [True]
    tracker = Tracker(
        TrackerConfig(interval_s=INTERVAL_S), clock.now(), state=S.FLAPPING, flap_history=history
    )
    assert tracker.flap_ratio == pytest.approx(1.0)
    assert play(tracker, clock, "ok ok") == [] and tracker.state is S.FLAPPING


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"interval_s": 0}, "interval_s", id="interval-zero"),
        pytest.param({"interval_s": 10, "failure_threshold": 0}, "failure_threshold", id="failure-threshold"),
        pytest.param({"interval_s": 10, "success_threshold": 0}, "success_threshold", id="success-threshold"),
        pytest.param({"interval_s": 10, "retry_interval_s": -1}, "retry_interval_s", id="retry-negative"),
        pytest.param({"interval_s": 10, "startup_grace_s": -5}, "startup_grace_s", id="grace-negative"),
        pytest.param({"interval_s": 10, "down_backoff_cap_s": 0}, "down_backoff_cap_s", id="cap-zero"),
        pytest.param({"interval_s": 10, "flap_low": 0.5}, "low <= high", id="flap-low-above-high"),
    ],
)
def test_config_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TrackerConfig(**kwargs)


@pytest.mark.parametrize(("interval_s", "cap_s"), [(1.0, 5.0), (2.0, 10.0), (10.0, 30.0), (60.0, 60.0)],
                         ids=["1s-5s", "2s-10s", "10s-30s", "60s-interval"])
def test_down_probe_backoff_is_capped_at_min_30s_and_5_intervals(interval_s: float, cap_s: float) -> None:
    """Regression (issue 14, defect 9): a DOWN component was probed up to 60 s apart whatever its interval,
    so a service fixed by hand stayed DOWN 42 s after it answered. Now the wait never passes
    min(30 s, 5 × interval) (nor drops below the interval): time moves on an injected clock, an hour of
    failures, and the service answering again is seen at the next probe, within that cap."""
    clock = FakeClock()
    tracker = Tracker(TrackerConfig(interval_s=interval_s, failure_threshold=1, success_threshold=1), clock.now())
    rng = EdgeRandom(high=True)
    waits = []
    for _ in range(200):
        tracker.observe(result(False, clock), clock.now())
        waits.append(tracker.next_delay_s(rng))
        clock.advance(waits[-1])
    assert tracker.state is S.DOWN
    assert max(waits) == cap_s
    tracker.observe(result(True, clock), clock.now())  # fixed by hand: answered at the next probe
    assert tracker.state is S.UP


def test_down_probe_cap_is_settable_per_component() -> None:
    clock = FakeClock()
    tracker = make(clock, failure_threshold=1, down_backoff_cap_s=15)
    play(tracker, clock, "fail fail fail fail fail fail")
    assert tracker.next_delay_s(EdgeRandom(high=True)) == 15
