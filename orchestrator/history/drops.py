"""Named counters of what the recorder did not write, by kind of row and cause.

Invariant 4 (nothing lost, docs/guarantees.md): every check result, transition and rollup the
recorder was handed is either in the database or counted here under a name that says why. The names
are a contract read by ``orchestrator status`` (through the heartbeat), ``/metrics``
(``orchestrator_recorder_dropped_total{kind,cause}``) and the daemon's stop log line:

- ``results_buffer_full``: the oldest results, dropped while the database was away and the buffer full;
- ``<kind>_removed``: rows of a component removed meanwhile (dropped knowingly, never written);
- ``<kind>_refused``: rows the database refused one by one (a poison row, isolated by bisecting);
- ``<kind>_at_stop``: rows still unwritten when the daemon stopped (the database was away).
"""

from __future__ import annotations

import threading

#: a spell of failed writes is shown as a failure (status, /readyz, page) once it lasts this long,
#: seconds: a busy lock or a failover's blip is not worth an alarm, a minute of buffering is
WRITES_FAILING_SHOWN_S = 10.0
KINDS = ("results", "transitions", "rollups", "pings")
#: every counter name, in the order they are shown (transitions and rollups are never dropped for room)
NAMES = ("results_buffer_full", "results_removed", "results_refused", "results_at_stop",
         "transitions_removed", "transitions_refused", "transitions_at_stop",
         "rollups_removed", "rollups_refused", "rollups_at_stop",
         "pings_removed", "pings_refused", "pings_at_stop")


class Drops:
    """Thread-safe counters; the recorder's thread adds, readers take a copy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(NAMES, 0)

    def add(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[name] += n  # KeyError for a name not in NAMES: a typo is a bug

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """Every counter by name, zeros included."""
        with self._lock:
            return dict(self._counts)

    def results(self) -> int:
        """Check results dropped, every cause together."""
        with self._lock:
            return sum(n for name, n in self._counts.items() if name.startswith("results_"))


def merged(*counters: dict[str, int]) -> dict[str, int]:
    """The sum of several snapshots (the recorder's and the judge's removed results)."""
    out = dict.fromkeys(NAMES, 0)
    for c in counters:
        for name, n in c.items():
            out[name] = out.get(name, 0) + int(n)
    return out


def describe(counts: dict[str, int]) -> str:
    """``results_refused=2 transitions_removed=1`` (non-zero only), or ``none`` — one line for people."""
    shown = [f"{name}={counts[name]}" for name in NAMES if counts.get(name)]
    return " ".join(shown) or "none"
