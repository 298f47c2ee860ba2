"""Flap detection the way Nagios does it: weighted percent state change over recent results.

The detector keeps the last ``window`` results (21 by default, so 20 possible changes). Each change
between two neighbouring results is weighted by its age: 0.8 for the oldest possible change, rising
linearly to 1.2 for the newest, so recent instability counts more than old. The ratio is the weighted
sum divided by the number of possible changes (``window - 1``), so 0.0 is perfectly stable and 1.0
is a result that alternates on every check.

Hysteresis keeps the verdict from flapping itself: the detector starts flapping when the ratio reaches
``high`` (0.30) and stops only when it drops below ``low`` (0.25).

A history shorter than the window is treated as if padded with its oldest result: the padding has
no changes, so a young component needs several real changes before it can count as flapping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

#: Results kept; Nagios' MAX_STATE_HISTORY_ENTRIES.
DEFAULT_WINDOW = 21
#: Enter flapping at or above this weighted change ratio.
DEFAULT_HIGH = 0.30
#: Leave flapping below this ratio; the gap to ``high`` is the hysteresis.
DEFAULT_LOW = 0.25
#: Weight of the oldest and of the newest possible change.
OLDEST_WEIGHT = 0.8
NEWEST_WEIGHT = 1.2


class FlapDetector:
    """Weighted state-change ratio over a sliding window of boolean results, with hysteresis."""

    def __init__(
        self,
        window: int = DEFAULT_WINDOW,
        high: float = DEFAULT_HIGH,
        low: float = DEFAULT_LOW,
        *,
        history: Iterable[bool] = (),
        flapping: bool = False,
    ) -> None:
        """``history`` (oldest first) and ``flapping`` restore a persisted detector."""
        if window < 3:
            raise ValueError(f"flap window must be >= 3 results, got {window}")
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"flap thresholds need 0 < low <= high <= 1, got low={low} high={high}")
        self.window, self.high, self.low = window, high, low
        self._history: deque[bool] = deque((bool(ok) for ok in history), maxlen=window)
        self._flapping = flapping
        self._ratio = self._compute_ratio()

    @property
    def history(self) -> tuple[bool, ...]:
        """The results kept, oldest first (for persistence)."""
        return tuple(self._history)

    @property
    def ratio(self) -> float:
        """Weighted state-change ratio, 0.0 (stable) to 1.0 (alternating every check)."""
        return self._ratio

    @property
    def flapping(self) -> bool:
        """The hysteresis verdict after the last :meth:`observe`."""
        return self._flapping

    def observe(self, ok: bool) -> bool:
        """Add one result; return whether the component is flapping now."""
        self._history.append(bool(ok))
        self._ratio = self._compute_ratio()
        if not self._flapping and self._ratio >= self.high:
            self._flapping = True
        elif self._flapping and self._ratio < self.low:
            self._flapping = False
        return self._flapping

    def reset(self) -> None:
        """Forget every result (after a pause or maintenance the old history says nothing)."""
        self._history.clear()
        self._ratio, self._flapping = 0.0, False

    def _compute_ratio(self) -> float:
        changes = self.window - 1
        step = (NEWEST_WEIGHT - OLDEST_WEIGHT) / (changes - 1)
        results = list(self._history)
        weighted = 0.0
        # Walk from the newest change backwards: age 0 weighs NEWEST_WEIGHT, age changes-1 OLDEST.
        for age, index in enumerate(range(len(results) - 1, 0, -1)):
            if results[index] != results[index - 1]:
                weighted += NEWEST_WEIGHT - age * step
        return weighted / changes
