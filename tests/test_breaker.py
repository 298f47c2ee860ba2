"""The recovery circuit breaker: scripted sequences, the transition table, persistence."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.errors import IllegalTransitionError
from orchestrator.resilience.breaker import (
    LEGAL_TRANSITIONS,
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
)

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def run(breaker: CircuitBreaker, clock: FakeClock, script: str) -> list[str]:
    """Play ``script`` (fail, ok, allow, wait:S) and return what happened, one token per step.

    ``allow`` yields ``yes``/``no``; a step that changes state yields ``from>to``; others ``-``.
    """
    out = []
    for token in script.split():
        now = clock.now()
        if token.startswith("wait:"):
            clock.advance(float(token[5:]))
            continue
        if token == "allow":
            before = breaker.state
            verdict = "yes" if breaker.allow(now) else "no"
            out.append(
                verdict if breaker.state is before else f"{verdict},{before.value}>{breaker.state.value}"
            )
            continue
        change = breaker.record_failure(now) if token == "fail" else breaker.record_success(now)
        out.append(f"{change.from_state.value}>{change.to_state.value}" if change else "-")
    return out


SCRIPTS = [
    pytest.param("fail fail", "- -", CLOSED, id="two-failures-stay-closed"),
    pytest.param("fail fail fail", "- - closed>open", OPEN, id="third-failure-opens"),
    pytest.param("fail fail ok fail fail", "- - - - -", CLOSED, id="success-resets-the-count"),
    pytest.param("fail fail fail allow", "- - closed>open no", OPEN, id="open-refuses"),
    pytest.param("fail fail fail wait:299 allow", "- - closed>open no", OPEN, id="refuses-until-period-ends"),
    pytest.param(
        "fail fail fail wait:300 allow allow allow",
        "- - closed>open yes,open>half_open no no",
        HALF,
        id="exactly-one-half-open-try",
    ),
    pytest.param(
        "fail fail fail wait:300 allow ok allow",
        "- - closed>open yes,open>half_open half_open>closed yes",
        CLOSED,
        id="half-open-success-closes",
    ),
    pytest.param(
        "fail fail fail wait:300 allow fail wait:300 allow wait:300 allow",
        "- - closed>open yes,open>half_open half_open>open no yes,open>half_open",
        HALF,
        id="half-open-failure-reopens-for-double",
    ),
    pytest.param("allow ok allow", "yes - yes", CLOSED, id="closed-always-allows"),
]


@pytest.mark.parametrize(("script", "expected", "final"), SCRIPTS)
def test_scripted_sequences(script: str, expected: str, final: BreakerState) -> None:
    breaker = CircuitBreaker()
    assert run(breaker, FakeClock(), script) == expected.split()
    assert breaker.state is final


def test_open_period_doubles_on_each_reopen_up_to_the_cap() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=1, open_base_s=300, open_cap_s=3600))
    breaker.record_failure(clock.now())
    periods = [breaker.open_period_s]
    for _ in range(5):
        clock.advance(breaker.open_period_s)
        assert breaker.allow(clock.now())
        change = breaker.record_failure(clock.now())
        assert change is not None and change.to_state is OPEN
        assert breaker.opened_until == clock.now() + timedelta(seconds=breaker.open_period_s)
        periods.append(breaker.open_period_s)
    assert periods == [300, 600, 1200, 2400, 3600, 3600]


def test_closing_resets_the_period_for_the_next_trip() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=1))
    run(breaker, clock, "fail wait:300 allow fail wait:600 allow ok")
    assert breaker.state is CLOSED and breaker.opened_until is None
    assert breaker.open_period_s == 300
    change = breaker.record_failure(clock.now())
    assert change is not None and "open for 300s" in change.reason
    assert breaker.opened_until == clock.now() + timedelta(seconds=300)


def test_trip_reports_a_transition_with_time_and_reason() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker()
    breaker.record_failure(clock.now())
    breaker.record_failure(clock.now())
    clock.advance(5)
    change = breaker.record_failure(clock.now())
    assert change is not None
    assert (change.from_state, change.to_state, change.at) == (CLOSED, OPEN, clock.now())
    assert change.reason == "3 consecutive failed recoveries; open for 300s"


def test_check_explains_a_refusal() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=1))
    breaker.record_failure(clock.now())
    permit = breaker.check(clock.now())
    assert not permit.allowed and permit.transition is None
    assert permit.reason == f"breaker open until {breaker.opened_until.isoformat()}"
    clock.advance(300)
    permit = breaker.check(clock.now())
    assert permit.allowed and permit.transition is not None and permit.transition.to_state is HALF


def test_operator_reset_closes_an_open_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=1))
    assert breaker.reset(clock.now()) is None  # already closed: nothing to report
    breaker.record_failure(clock.now())
    change = breaker.reset(clock.now(), "fixed by hand")
    assert change is not None and (change.to_state, change.reason) == (CLOSED, "fixed by hand")
    assert breaker.allow(clock.now())


ILLEGAL = [pair for pair in itertools.product(BreakerState, repeat=2) if pair not in LEGAL_TRANSITIONS]


@pytest.mark.parametrize(("src", "dst"), ILLEGAL, ids=[f"{a.value}>{b.value}" for a, b in ILLEGAL])
def test_illegal_transitions_are_refused(src: BreakerState, dst: BreakerState) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(state=src, opened_until=clock.now())
    with pytest.raises(IllegalTransitionError, match=f"{src.value} -> {dst.value}"):
        breaker._transition(dst, clock.now(), "test")
    assert breaker.state is src


def test_table_has_no_self_loops_and_closed_cannot_skip_to_half_open() -> None:
    assert all(a is not b for a, b in LEGAL_TRANSITIONS)
    assert (CLOSED, HALF) not in LEGAL_TRANSITIONS


@pytest.mark.parametrize("script", ["", "fail", "fail fail fail", "fail fail fail wait:300 allow",
                                    "fail fail fail wait:300 allow fail"],
                         ids=["fresh", "counting", "open", "half-open", "reopened"])  # fmt: skip
def test_dict_round_trip(script: str) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker()
    run(breaker, clock, script)
    data = json.loads(json.dumps(breaker.to_dict()))  # what the database hands back
    restored = CircuitBreaker.from_dict(data)
    assert restored.to_dict() == breaker.to_dict()
    assert (restored.state, restored.opened_until) == (breaker.state, breaker.opened_until)
    assert restored.allow(clock.now()) == breaker.allow(clock.now())


def test_restored_open_breaker_waits_out_its_period() -> None:
    clock = FakeClock()
    until = clock.now() + timedelta(seconds=600)
    breaker = CircuitBreaker.from_dict(
        {"state": "open", "open_period_s": 600, "opened_until": until.isoformat()}
    )
    assert not breaker.allow(clock.now())
    clock.advance(600)
    assert breaker.allow(clock.now()) and breaker.state is HALF
    breaker.record_failure(clock.now())
    assert breaker.open_period_s == 1200


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({"state": "open", "colour": "red"}, "unknown breaker keys", id="unknown-key"),
        pytest.param({"state": "ajar"}, "ajar", id="unknown-state"),
        pytest.param({"state": "open"}, "opened_until", id="open-without-deadline"),
        pytest.param({"state": "open", "opened_until": "2026-01-01T00:00:00"}, "timezone", id="naive-time"),
    ],
)
def test_from_dict_rejects_bad_data(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker.from_dict(data)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"failure_threshold": 0}, "failure_threshold", id="threshold-zero"),
        pytest.param({"open_base_s": 0}, "open_base_s", id="base-zero"),
        pytest.param({"open_base_s": 600, "open_cap_s": 60}, "open_cap_s", id="cap-below-base"),
    ],
)
def test_config_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BreakerConfig(**kwargs)


def test_naive_now_is_refused() -> None:
    breaker = CircuitBreaker(BreakerConfig(failure_threshold=1))
    with pytest.raises(ValueError, match="timezone"):
        breaker.record_failure(datetime(2026, 1, 1))
