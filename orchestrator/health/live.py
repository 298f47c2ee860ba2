"""The live view: what the recovery engine, the web and the CLI read of the judge's verdicts.

Written only by the judge thread (on installs, transitions and removals); read from any thread.
It implements the recovery engine's ``HealthView``: per-component state and flap episode, every
state at once, counts per state kept incrementally (the blast-radius guard reads them on every
decision: no walk over the fleet), whether the view can be trusted, and ``report_results`` that
hands verification probes to the judge like any other check result.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from orchestrator.core.check_result import CheckResult
from orchestrator.core.states import ComponentState

Reporter = Callable[[int, Sequence[CheckResult]], None]


class LiveView:
    """Thread-safe reads of the live state; ``set``/``drop`` are the judge's."""

    def __init__(self, reliable: Callable[[], bool] = lambda: True) -> None:
        self._reliable = reliable
        self._states: dict[int, ComponentState] = {}
        self._flap: dict[int, int] = {}
        self._counts: Counter[ComponentState] = Counter()
        self._lock = threading.Lock()
        self._reporter: Reporter | None = None
        self._watchers: list[Callable[[], None]] = []

    def connect(self, reporter: Reporter) -> None:
        """Where ``report_results`` sends verification probes (the judge's queue)."""
        self._reporter = reporter

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (on the judge's thread: keep it short, e.g. set an event) whenever the
        counts per state change: a component changed state, was added or removed."""
        self._watchers.append(callback)

    # -- the judge ---------------------------------------------------------------------------
    def set(self, component_id: int, state: ComponentState, flap_episode: int) -> None:
        with self._lock:
            old = self._states.get(component_id)
            if old is not state:
                if old is not None:
                    self._counts[old] -= 1
                self._counts[state] += 1
                self._states[component_id] = state
            self._flap[component_id] = flap_episode
        if old is not state:
            self._changed()

    def drop(self, component_id: int) -> None:
        with self._lock:
            old = self._states.pop(component_id, None)
            self._flap.pop(component_id, None)
            if old is not None:
                self._counts[old] -= 1
        if old is not None:
            self._changed()

    def _changed(self) -> None:
        for callback in self._watchers:
            callback()

    # -- HealthView ---------------------------------------------------------------------------
    def state(self, component_id: int) -> ComponentState:
        """The component's current state (UNKNOWN for an unknown id)."""
        return self._states.get(component_id, ComponentState.UNKNOWN)

    def states(self) -> dict[int, ComponentState]:
        """Every component's current state, by id (a copy)."""
        with self._lock:
            return dict(self._states)

    def counts(self) -> Mapping[ComponentState, int]:
        """Components per state (a copy; states with none are absent)."""
        with self._lock:
            return {state: n for state, n in self._counts.items() if n}

    def flap_episode(self, component_id: int) -> int:
        """Times the component started flapping (0 if never, or unknown)."""
        return self._flap.get(component_id, 0)

    def view_reliable(self) -> bool:
        """False while every sentinel fails: the orchestrator's own view cannot be trusted."""
        return self._reliable()

    def report_results(self, component_id: int, results: Sequence[CheckResult]) -> None:
        """Verification probes after a recovery action, judged as check results by the judge."""
        if self._reporter is not None and results:
            self._reporter(component_id, results)

    def __len__(self) -> int:
        return len(self._states)
