"""The recovery budget: a sliding window of past actions."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.clock import FakeClock
from orchestrator.resilience.budget import RecoveryBudget

T0 = FakeClock().now()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


SCRIPTS = [
    # (actions recorded at these offsets, asked at, expected allows, remaining, next allowed offset)
    pytest.param([], 0, True, 3, 0, id="fresh-budget"),
    pytest.param([0, 100], 200, True, 1, 200, id="one-left"),
    pytest.param([0, 100, 200], 300, False, 0, 600, id="spent-until-oldest-ages-out"),
    pytest.param([0, 100, 200], 599.5, False, 0, 600, id="still-spent-just-before"),
    pytest.param([0, 100, 200], 600, True, 1, 600, id="oldest-expires-exactly-at-window"),
    pytest.param([0, 100, 200], 750, True, 2, 750, id="window-slides-on"),
    pytest.param([0, 100, 200, 250], 300, False, 0, 700, id="over-spent-waits-for-two"),
    pytest.param([-5000, 100, 200], 300, True, 1, 300, id="old-history-ignored"),
]


@pytest.mark.parametrize(("recorded", "asked", "allows", "remaining", "next_at"), SCRIPTS)
def test_sliding_window(
    recorded: list[float], asked: float, allows: bool, remaining: int, next_at: float
) -> None:
    budget = RecoveryBudget(max_actions=3, window_s=600)
    for offset in recorded:
        budget.record(at(offset))
    now = at(asked)
    assert budget.allows(now) is allows
    assert budget.remaining(now) == remaining
    assert budget.next_allowed_at(now) == at(next_at)


def test_built_from_database_history_in_any_order() -> None:
    budget = RecoveryBudget(2, 600, history=[at(300), at(-10_000), at(100)])
    assert budget.used(at(350)) == 2 and not budget.allows(at(350))
    assert budget.next_allowed_at(at(350)) == at(700)


def test_clock_moves_and_budget_recovers() -> None:
    clock = FakeClock()
    budget = RecoveryBudget(max_actions=2, window_s=60)
    for _ in range(2):
        budget.record(clock.now())
        clock.advance(10)
    assert not budget.allows(clock.now())
    clock.advance(40)  # first action now 60s old
    assert budget.allows(clock.now()) and budget.remaining(clock.now()) == 1


def test_record_forgets_actions_that_can_no_longer_count() -> None:
    budget = RecoveryBudget(3, 600, history=[at(0), at(50)])
    budget.record(at(620))
    assert budget.timestamps == (at(50), at(620))


def test_record_counts_even_when_spent() -> None:
    budget = RecoveryBudget(1, 600)
    budget.record(at(0))
    budget.record(at(10))  # a manual recovery still uses budget
    assert budget.used(at(20)) == 2
    assert budget.next_allowed_at(at(20)) == at(610)


@given(
    offsets=st.lists(st.integers(min_value=0, max_value=3600), max_size=12),
    max_actions=st.integers(min_value=1, max_value=5),
    asked=st.integers(min_value=0, max_value=4000),
)
def test_next_allowed_at_is_the_first_allowed_instant(
    offsets: list[int], max_actions: int, asked: int
) -> None:
    budget = RecoveryBudget(max_actions, 600, history=[at(o) for o in offsets])
    now = at(asked)
    first = budget.next_allowed_at(now)
    assert first >= now and budget.allows(first)
    if first > now:
        assert not budget.allows(first - timedelta(microseconds=1))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param((0, 600), "max_actions", id="no-actions"),
        pytest.param((2.5, 600), "max_actions", id="fractional-actions"),
        pytest.param((3, 0), "window_s", id="empty-window"),
        pytest.param((3, float("inf")), "window_s", id="infinite-window"),
    ],
)
def test_bad_settings_raise(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RecoveryBudget(*args)


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        RecoveryBudget(3, 600, history=[datetime(2026, 1, 1)])
