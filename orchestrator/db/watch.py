"""One log line per change of a loop's view of the database, not one per loop turn.

The recovery loop turns ten times a second, the notifier once a second; while the database is away
every turn fails the same way. A
:class:`DatabaseWatch` says ``database lost`` once (with the first error), ``database back after
N s`` once (with how many turns failed), and stays quiet in between. Another kind of failure (a bug)
is logged when it is first seen and whenever its message changes.

It only quiets the log: it never changes what the loop does (invariant 6: the loop keeps turning and
picks its work up again as soon as the database answers), and the outage itself is still said, with
its length.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import first_line

#: failures that mean "the database is away" rather than "a bug": driver errors, pool exhaustion, sockets
OUTAGE_ERRORS = (DBAPIError, PoolTimeout, OSError)


class DatabaseWatch:
    """Feed it each turn's outcome: :meth:`failed` with the exception, or :meth:`ok`."""

    def __init__(self, log: logging.Logger, what: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.log, self.what, self.clock = log, what, clock
        self.lost_at: float | None = None  # monotonic seconds when the outage began, None while reachable
        self.failed_turns = 0
        self._last_bug: str | None = None

    @property
    def lost(self) -> bool:
        return self.lost_at is not None

    def failed(self, exc: BaseException) -> None:
        """One turn failed with ``exc``."""
        if not isinstance(exc, OUTAGE_ERRORS):
            message = f"{type(exc).__name__}: {first_line(exc)}"
            if message != self._last_bug:
                self.log.warning("%s: %s", self.what, message)
                self._last_bug = message
            return
        self.failed_turns += 1
        if self.lost_at is None:
            self.lost_at = self.clock.monotonic()
            self.log.warning("%s: database lost: %s", self.what, first_line(exc))

    def ok(self) -> None:
        """One turn went through."""
        self._last_bug = None
        if self.lost_at is not None:
            self.log.warning("%s: database back after %.1fs (%d turns failed)", self.what,
                             self.clock.monotonic() - self.lost_at, self.failed_turns)
            self.lost_at, self.failed_turns = None, 0
