"""A recovery budget: at most ``max_actions`` recovery actions per sliding ``window_s``.

Like systemd's ``StartLimitBurst=`` / ``StartLimitIntervalSec=``: a component that needs restarting
five times in ten minutes has a problem a sixth restart will not fix, so automation stops and a human
is told. The database keeps the action timestamps; this class only decides. An action at ``t`` counts
while ``now - t < window_s`` and stops counting exactly ``window_s`` later.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from datetime import datetime, timedelta


class RecoveryBudget:
    """A sliding-window action limit for one component. Pure: callers pass ``now``."""

    def __init__(self, max_actions: int, window_s: float, history: Iterable[datetime] = ()) -> None:
        """``history``: timestamps (aware UTC) of past actions, in any order; old ones are ignored."""
        if isinstance(max_actions, bool) or not isinstance(max_actions, int) or max_actions < 1:
            raise ValueError(f"max_actions must be an integer >= 1, got {max_actions!r}")
        if not math.isfinite(window_s) or window_s <= 0:
            raise ValueError(f"window_s must be a finite number > 0, got {window_s!r}")
        self.max_actions = max_actions
        self.window = timedelta(seconds=window_s)
        self._times: list[datetime] = sorted(_aware(t) for t in history)

    @property
    def timestamps(self) -> tuple[datetime, ...]:
        """The action timestamps kept (oldest first), for the database."""
        return tuple(self._times)

    def _in_window(self, now: datetime) -> list[datetime]:
        # Only actions strictly after now - window count; one at exactly that instant has expired.
        start = bisect.bisect_right(self._times, _aware(now) - self.window)
        return self._times[start:]

    def used(self, now: datetime) -> int:
        """Actions counted against the budget at ``now``."""
        return len(self._in_window(now))

    def remaining(self, now: datetime) -> int:
        """How many more actions are allowed at ``now`` (0 when spent)."""
        return max(0, self.max_actions - self.used(now))

    def allows(self, now: datetime) -> bool:
        """True when one more action may run at ``now``."""
        return self.remaining(now) > 0

    def record(self, now: datetime) -> None:
        """Count an action taken at ``now``, and forget actions that can no longer count.

        Records even when the budget is spent: a manual recovery still uses up budget, so call
        :meth:`allows` first when the action is optional.
        """
        self._times = self._in_window(now)
        bisect.insort(self._times, _aware(now))

    def next_allowed_at(self, now: datetime) -> datetime:
        """The earliest instant an action is allowed: ``now`` when allowed already."""
        recent = self._in_window(now)
        excess = len(recent) - self.max_actions
        if excess < 0:
            return now
        # The oldest excess+1 actions must age out before the count drops below the limit.
        return recent[excess] + self.window


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got {moment!r}")
    return moment
