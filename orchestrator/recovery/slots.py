"""Action slots: how many recovery actions may be in flight at once, across all components.

A slot is held from just before a strategy's ``execute()`` until it returns, and never through the
verification after it: a restart takes a moment, watching it come back takes seconds, and holding
the slot for both made a burst of failures go in waves. Guards, settling, waiting for a retry or
an approval hold no slot either.

The limit is ``limits.max_concurrent_recoveries`` when set. By default it scales with the fleet, the
way Envoy's ``max_ejection_percent`` bounds outlier ejection by a share of the hosts with a floor:
``max(DEFAULT_FLOOR, ceil(DEFAULT_SHARE * components))``. It stays inside the blast-radius guard
(``max_unhealthy_fraction``, 50 % by default): beyond that share no automatic action runs at all.
"""

from __future__ import annotations

import math
import threading

#: Fewest slots by default, so a small fleet still recovers several components at once.
DEFAULT_FLOOR = 4
#: Default share of the fleet that may be acted on at once.
DEFAULT_SHARE = 0.10
#: Longest wait between looks at ``stop`` while waiting for a slot.
WAIT_SLICE_S = 0.2


def default_limit(configured: int | None, fleet_size: int) -> int:
    """The slot count for a fleet of ``fleet_size``: the configured value, else the scaled default."""
    if configured is not None:
        return configured
    return max(DEFAULT_FLOOR, math.ceil(DEFAULT_SHARE * fleet_size))


class ActionSlots:
    """A counting semaphore whose limit can change while it is in use (the fleet grows, a reload)."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._used = 0
        self._cond = threading.Condition()

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_use(self) -> int:
        """Slots held right now."""
        with self._cond:
            return self._used

    def set_limit(self, limit: int) -> None:
        """Change the limit; holders above a lowered limit keep their slots until they release them."""
        with self._cond:
            self._limit = max(1, limit)
            self._cond.notify_all()

    def acquire(self, stop: threading.Event) -> bool:
        """Wait for a slot; False if ``stop`` was set first."""
        with self._cond:
            while self._used >= self._limit:
                if stop.is_set():
                    return False
                self._cond.wait(WAIT_SLICE_S)
            if stop.is_set():
                return False
            self._used += 1
            return True

    def release(self) -> None:
        with self._cond:
            self._used = max(0, self._used - 1)
            self._cond.notify()
