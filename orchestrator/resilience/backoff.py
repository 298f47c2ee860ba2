"""Exponential backoff with jitter: how long to wait before retry number ``attempt``.

Retries count from 1. The ceiling for retry ``n`` is ``min(cap_s, base_s * 2**(n-1))``:

- :func:`exponential_delay` is the ceiling itself (deterministic; for display and for tests);
- :func:`full_jitter_delay` draws uniformly from ``[0, ceiling]``: the best spread when many callers
  retry at once (a mass outage), at the price of sometimes retrying almost immediately;
- :func:`equal_jitter_delay` draws from ``[ceiling/2, ceiling]``: still spread, but never sooner than
  half the ceiling. Used for probes of a component that is down, where an immediate re-probe is waste.

Randomness always comes from an injected :class:`random.Random` so tests are reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

#: 2.0**1023 is the largest power of two a float holds; past it the cap always wins anyway.
_MAX_EXPONENT = 1023


def _validate(attempt: int, base_s: float, cap_s: float) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an integer >= 1, got {attempt!r}")
    for name, value in (("base_s", base_s), ("cap_s", cap_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def exponential_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """The ceiling ``min(cap_s, base_s * 2**(attempt-1))``; ValueError on a bad argument."""
    _validate(attempt, base_s, cap_s)
    # Clamping the exponent keeps huge attempt numbers from raising OverflowError.
    return min(float(cap_s), base_s * 2.0 ** min(attempt - 1, _MAX_EXPONENT))


def full_jitter_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """A delay drawn uniformly from ``[0, exponential_delay(attempt, base_s, cap_s)]``."""
    return rng.uniform(0.0, exponential_delay(attempt, base_s, cap_s))


def equal_jitter_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """A delay drawn uniformly from ``[ceiling/2, ceiling]`` where ceiling is the exponential delay."""
    half = exponential_delay(attempt, base_s, cap_s) / 2.0
    return half + rng.uniform(0.0, half)


@dataclass(frozen=True, slots=True)
class Backoff:
    """A backoff policy as configuration holds it: validated once, then asked per attempt."""

    base_s: float
    cap_s: float

    def __post_init__(self) -> None:
        _validate(1, self.base_s, self.cap_s)

    def ceiling(self, attempt: int) -> float:
        """The longest delay before retry number ``attempt`` (no jitter)."""
        return exponential_delay(attempt, self.base_s, self.cap_s)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """A full-jitter delay before retry number ``attempt``."""
        return full_jitter_delay(attempt, self.base_s, self.cap_s, rng)
