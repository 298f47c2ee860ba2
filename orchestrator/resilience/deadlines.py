"""Waits written down as wall times, kept on the monotonic clock while this process lives.

The recovery loop's waits (a step's backoff, a failed run's retry, a blocked incident's re-check, an
approval's timeout, a crash loop's delay) are stored in ``incidents.next_attempt_at``: wall time,
because people read it and a later process takes it over. Asking the database "due by now?" with the
wall clock alone made a wall clock stepped back an hour hold every retry an hour (and one stepped
forward fire them all at once). :class:`WallDeadlines` remembers, for each wait this process wrote,
the monotonic instant it ends:

1. ``set(key, at, now=, mono=)`` when the wait is written (``now``/``mono`` read together); writing
   the same wall time again is the same wait: its monotonic end stands (re-anchoring it on a stepped
   wall clock would stretch or cut it);
2. ``horizon(now, mono)`` is the wall time to ask the database with: ``now``, or the written wall time
   of every wait whose monotonic end has passed, whichever is later (found although the wall stepped back);
3. ``waiting(mono)`` are the keys whose monotonic end is still ahead, with the wall time written: not
   due, whatever the wall says, as long as that wall time is still the one stored (a person's approval
   or another writer that moved it wins);
4. ``expire(mono)`` takes the waits that ended out of the horizon once they were asked for;
5. ``passed(key, at, now=, mono=)`` is the one question a run asks before it acts on a wait it
   computes again from stored wall times (a crash loop's delay, an approval's timeout, an inherited
   ``next_attempt_at``): the monotonic clock answers for a wait this process wrote with that wall
   time, the wall clock only for one it never wrote.

Waits written by an earlier process have no monotonic end here and stay on the wall clock until this
process writes them (they are looked at on start-up anyway). Pure apart from a lock: no I/O, times
passed in.

Protects invariant 7 (time): a step of the wall clock changes when nothing waits; only what is written.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Hashable
from datetime import datetime
from typing import Generic, TypeVar

#: what a wait is kept under (an incident id)
K = TypeVar("K", bound=Hashable)


class WallDeadlines(Generic[K]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: waits still in the horizon: key → (wall time written, monotonic end)
        self._ends: dict[K, tuple[datetime, float]] = {}
        #: waits that ended and were asked for: key → (wall time written, monotonic end), until set again
        self._ended: dict[K, tuple[datetime, float]] = {}

    def set(self, key: K, at: datetime | None, *, now: datetime, mono: float) -> None:
        """The wait ``key`` now ends at wall time ``at`` (None: it no longer waits)."""
        with self._lock:
            ended = self._ended.pop(key, None)
            if at is None:
                self._ends.pop(key, None)
                return
            same = self._ends.get(key) or ended
            if same is not None and same[0] == at:
                self._ends[key] = same  # the same wait written again: it ends when it did
            else:
                self._ends[key] = (at, mono + (at - now).total_seconds())

    def horizon(self, now: datetime, mono: float) -> datetime:
        """The wall time that finds every wait ended on the monotonic clock (at least ``now``)."""
        with self._lock:
            return max([now, *(at for at, end in self._ends.values() if end <= mono)])

    def waiting(self, mono: float) -> dict[K, datetime]:
        """Keys whose wait is still running on the monotonic clock, with the wall time written for each."""
        with self._lock:
            return {key: at for key, (at, end) in self._ends.items() if end > mono}

    def next_end(self, mono: float) -> float | None:
        """The earliest monotonic end still ahead of ``mono`` (None: no wait is running): when the
        recovery loop must look again."""
        with self._lock:
            return min((end for _at, end in self._ends.values() if end > mono), default=None)

    def known(self) -> builtins.set[K]:  # plain `set` names the method above
        """Keys whose wait this process wrote and still remembers (ended or not)."""
        with self._lock:
            return set(self._ends)

    def expire(self, mono: float) -> None:
        with self._lock:
            for key in [key for key, (_at, end) in self._ends.items() if end <= mono]:
                self._ended[key] = self._ends.pop(key)

    def wrote(self, key: K) -> bool:
        """Did this process write a wait for ``key`` (still running or ended, not cleared since)?"""
        with self._lock:
            return key in self._ends or key in self._ended

    def passed(self, key: K, at: datetime, *, now: datetime, mono: float) -> bool:
        """Has the wait ``key`` ending at wall time ``at`` ended? On the monotonic clock when this
        process wrote that wait, else on the wall clock."""
        with self._lock:
            written = self._ends.get(key) or self._ended.get(key)
        if written is not None and written[0] == at:
            return written[1] <= mono
        return now >= at
