"""Answers the daemon's web server reuses while its data cannot have changed, so web load spares checks.

Inside `orchestrator run --http` the web threads share the daemon's process (and its GIL) with the check
threads; bench/web.py measured 10 page loads and 10 scrapes a second raising the healthy checks'
lateness p99 from ≤ 10 ms to ≤ 250 ms when every request was built from scratch. What the page and
/metrics show changes with a recorder batch (results, states and transitions are written together,
at most ``flush_interval_s`` = 1 s apart) or with a write made through this app, so an answer is reused
while neither happened, and never longer than :data:`MAX_AGE_S` (incidents and the journal change
outside the recorder too). The overview's live part is the same for every visitor, so it can be shared;
what differs per browser (login state, CSRF token) is rendered around it each time.

``orchestrator web`` has no daemon to protect and no batch to watch: its source gives no version, and
nothing is cached there (so bench/web.py's response times there are always a full build).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

from orchestrator.core.clock import Clock

#: an answer is never older than this, whatever the recorder does (the page refreshes every 2 s)
MAX_AGE_S = 1.0
#: distinct keys kept (query strings of the overview, /metrics): a bound against arbitrary query strings
MAX_ENTRIES = 64

T = TypeVar("T")


class AnswerCache:
    """``get(key, version, build)``: the last build for ``key`` while ``version`` is unchanged and young."""

    def __init__(self, clock: Clock, *, max_age_s: float = MAX_AGE_S) -> None:
        self.clock = clock
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[Hashable, float, object]] = {}
        self._writes = 0

    def invalidate(self) -> None:
        """Something was written through this app: nothing cached is current any more."""
        with self._lock:
            self._writes += 1
            self._entries.clear()

    def get(self, key: Hashable, version: Hashable | None, build: Callable[[], T]) -> T:
        """``build()``'s answer, reused while ``version`` (None: never cache) and the app's writes stand."""
        if version is None:
            return build()
        now = self.clock.monotonic()
        with self._lock:
            version = (version, self._writes)
            hit = self._entries.get(key)
            if hit is not None and hit[0] == version and now - hit[1] < self.max_age_s:
                return hit[2]  # type: ignore[return-value]
        value = build()  # outside the lock: a concurrent miss builds too, the later one is kept
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES and key not in self._entries:
                self._entries.clear()
            self._entries[key] = (version, now, value)
        return value
