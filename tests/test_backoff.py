"""Exponential backoff: the ceiling table, jitter bounds, and argument validation."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.resilience.backoff import (
    Backoff,
    equal_jitter_delay,
    exponential_delay,
    full_jitter_delay,
)

attempts = st.integers(min_value=1, max_value=5000)
seconds = st.floats(min_value=1e-3, max_value=1e5, allow_nan=False, allow_infinity=False)
seeds = st.integers(min_value=0, max_value=2**32)


@pytest.mark.parametrize(
    ("attempt", "base_s", "cap_s", "expected"),
    [
        pytest.param(1, 1.0, 60.0, 1.0, id="first-retry-waits-base"),
        pytest.param(2, 1.0, 60.0, 2.0, id="second-doubles"),
        pytest.param(3, 1.0, 60.0, 4.0, id="third-doubles-again"),
        pytest.param(6, 1.0, 60.0, 32.0, id="last-below-cap"),
        pytest.param(7, 1.0, 60.0, 60.0, id="capped"),
        pytest.param(2, 0.5, 60.0, 1.0, id="fractional-base"),
        pytest.param(1, 10.0, 5.0, 5.0, id="cap-below-base-wins"),
        pytest.param(10_000, 1.0, 60.0, 60.0, id="huge-attempt-does-not-overflow"),
    ],
)
def test_exponential_delay_table(attempt: int, base_s: float, cap_s: float, expected: float) -> None:
    assert exponential_delay(attempt, base_s, cap_s) == expected


@given(attempt=attempts, base_s=seconds, cap_s=seconds, seed=seeds)
def test_full_jitter_stays_between_zero_and_ceiling(
    attempt: int, base_s: float, cap_s: float, seed: int
) -> None:
    delay = full_jitter_delay(attempt, base_s, cap_s, random.Random(seed))
    assert 0.0 <= delay <= exponential_delay(attempt, base_s, cap_s)


@given(attempt=attempts, base_s=seconds, cap_s=seconds, seed=seeds)
def test_equal_jitter_stays_in_upper_half(attempt: int, base_s: float, cap_s: float, seed: int) -> None:
    ceiling = exponential_delay(attempt, base_s, cap_s)
    delay = equal_jitter_delay(attempt, base_s, cap_s, random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling * (1 + 1e-12)


def test_full_jitter_spreads_over_the_whole_range() -> None:
    rng = random.Random(7)
    delays = [full_jitter_delay(4, 1.0, 60.0, rng) for _ in range(2000)]
    # Uniform on [0, 8]: a spread-out sample, mean near 4, touching both ends.
    assert min(delays) < 0.1 and max(delays) > 7.9
    assert 3.7 < sum(delays) / len(delays) < 4.3


def test_same_seed_gives_same_delays() -> None:
    first = [full_jitter_delay(n, 1.0, 60.0, random.Random(42)) for n in range(1, 8)]
    again = [full_jitter_delay(n, 1.0, 60.0, random.Random(42)) for n in range(1, 8)]
    assert first == again


@pytest.mark.parametrize(
    ("attempt", "base_s", "cap_s", "message"),
    [
        pytest.param(0, 1.0, 60.0, "attempt", id="attempt-zero"),
        pytest.param(-3, 1.0, 60.0, "attempt", id="attempt-negative"),
        pytest.param(1.5, 1.0, 60.0, "attempt", id="attempt-not-integer"),
        pytest.param(True, 1.0, 60.0, "attempt", id="attempt-bool"),
        pytest.param(1, 0.0, 60.0, "base_s", id="base-zero"),
        pytest.param(1, -1.0, 60.0, "base_s", id="base-negative"),
        pytest.param(1, math.nan, 60.0, "base_s", id="base-nan"),
        pytest.param(1, 1.0, math.inf, "cap_s", id="cap-infinite"),
        pytest.param(1, 1.0, 0.0, "cap_s", id="cap-zero"),
        pytest.param(1, "1", 60.0, "base_s", id="base-string"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(attempt, base_s, cap_s, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        exponential_delay(attempt, base_s, cap_s)
    with pytest.raises(ValueError, match=message):
        full_jitter_delay(attempt, base_s, cap_s, random.Random(0))


def test_backoff_policy_object() -> None:
    policy = Backoff(base_s=2.0, cap_s=30.0)
    assert [policy.ceiling(n) for n in range(1, 6)] == [2.0, 4.0, 8.0, 16.0, 30.0]
    assert 0.0 <= policy.delay(3, random.Random(1)) <= 8.0
    with pytest.raises(ValueError, match="cap_s"):
        Backoff(base_s=2.0, cap_s=-1.0)
