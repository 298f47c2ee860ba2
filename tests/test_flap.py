"""Nagios-style flap detection: exact weighted ratios and the hysteresis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.health.flap import FlapDetector


def feed(detector: FlapDetector, pattern: str) -> list[bool]:
    """Feed ``pattern`` (``+`` pass, ``-`` fail, spaces ignored); return the verdict after each."""
    return [detector.observe(ch == "+") for ch in pattern.replace(" ", "")]


RATIOS = [
    pytest.param("+" * 21, 0.0, id="stable"),
    pytest.param("+-" * 10 + "+", 1.0, id="alternating-full-window"),
    pytest.param("+" * 20 + "-", 1.2 / 20, id="one-newest-change-weighs-1.2"),
    pytest.param("+" + "-" * 20, 0.8 / 20, id="one-oldest-change-weighs-0.8"),
    pytest.param("+-", 1.2 / 20, id="short-history-padded-without-changes"),
    pytest.param("+" * 30 + "-", 1.2 / 20, id="only-last-21-kept"),
    pytest.param("-+" + "+" * 20, 0.0, id="old-change-shifted-out"),
]


@pytest.mark.parametrize(("pattern", "ratio"), RATIOS)
def test_weighted_ratio(pattern: str, ratio: float) -> None:
    detector = FlapDetector()
    feed(detector, pattern)
    assert detector.ratio == pytest.approx(ratio)
    assert len(detector.history) == min(21, len(pattern))


def test_middle_pair_weights_follow_the_linear_ramp() -> None:
    # The changes at ages 9 and 10 (from the newest) weigh 1.2 - 9*step and 1.2 - 10*step.
    step = 0.4 / 19
    detector = FlapDetector()
    feed(detector, "+" * 10 + "-" + "+" * 10)
    assert detector.ratio == pytest.approx((1.2 - 9 * step + 1.2 - 10 * step) / 20)


VERDICTS = [
    pytest.param("++ -+-+-+", "." * 7 + "F", id="enters-on-the-sixth-change"),
    pytest.param("-+-+-+-+-+-+-+ " + "+" * 20, "." * 6 + "F" * 22 + "." * 6, id="leaves-after-stable"),
    pytest.param(
        "-+-+-+-+-+-+-+ " + "-" * 20, "." * 6 + "F" * 23 + "." * 5, id="leaves-one-later-after-failures"
    ),
]


@pytest.mark.parametrize(("pattern", "expected"), VERDICTS)
def test_flapping_verdicts(pattern: str, expected: str) -> None:
    verdicts = feed(FlapDetector(), pattern)
    assert "".join("F" if v else "." for v in verdicts) == expected.replace(" ", "")


def test_hysteresis_band_keeps_the_previous_verdict() -> None:
    # Same history, ratio between low and high: the verdict depends on where it came from.
    history = [True] * 16 + [False, True, False, True, False]  # 5 changes, the newest ones
    quiet = FlapDetector(history=history, flapping=False)
    noisy = FlapDetector(history=history, flapping=True)
    assert quiet.observe(False) is False
    assert noisy.observe(False) is True
    assert 0.25 <= quiet.ratio == noisy.ratio < 0.30


def test_enters_at_exactly_the_high_mark() -> None:
    detector = FlapDetector(window=3, high=0.6, low=0.5)
    feed(detector, "++")
    assert detector.observe(False) and detector.ratio == pytest.approx(0.6)


def test_reset_forgets_everything() -> None:
    detector = FlapDetector()
    feed(detector, "+-" * 10)
    assert detector.flapping
    detector.reset()
    assert (detector.flapping, detector.ratio, detector.history) == (False, 0.0, ())


@given(st.lists(st.booleans(), max_size=60))
def test_ratio_always_between_zero_and_one(results: list[bool]) -> None:
    detector = FlapDetector()
    for ok in results:
        detector.observe(ok)
        assert 0.0 <= detector.ratio <= 1.0 + 1e-9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"window": 2}, "window", id="window-too-small"),
        pytest.param({"high": 0.2, "low": 0.3}, "low <= high", id="low-above-high"),
        pytest.param({"high": 1.5}, "low <= high", id="high-above-one"),
        pytest.param({"low": 0.0}, "low <= high", id="low-zero"),
    ],
)
def test_bad_settings_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FlapDetector(**kwargs)
