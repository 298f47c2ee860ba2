"""The live view of every component: its check, its tracker, and the job body that runs one check.

``sync()`` mirrors the registry into memory (added, changed, paused and removed components take effect
on the next sync, every couple of seconds, without a restart). ``run_check()`` is what the scheduler
runs: check, feed the tracker, hand the result and any transition to the recorder, and move the next
run when the tracker wants it sooner (a first failure) or later (DOWN backoff). It never raises.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.states import ComponentState
from orchestrator.db.engine import Database
from orchestrator.db.models import Component
from orchestrator.health.checkers import get_checker
from orchestrator.health.result import CheckResult
from orchestrator.health.scheduler import CheckScheduler
from orchestrator.health.spec import CheckSpec
from orchestrator.health.tracker import Tracker, TrackerConfig, Transition
from orchestrator.history.recorder import LiveState, Recorder, ResultItem, TransitionItem
from orchestrator.recovery.targets import effective_check

log = logging.getLogger(__name__)

_HOLDS = (ComponentState.PAUSED, ComponentState.MAINTENANCE)


@dataclass
class Runtime:
    """One component as the daemon runs it. Replaced whole when its definition changes."""

    id: int
    name: str
    generation: int
    spec: CheckSpec
    interval_s: float
    timeout_s: float
    tracker: Tracker
    expected_at: float  # epoch seconds the next check is due, for lateness
    hold: ComponentState | None = None
    # the scheduled check and results reported by recovery (report_results) both feed the tracker
    judging: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Monitor:
    """Owns the runtimes; implements the recovery engine's HealthView."""

    def __init__(self, db: Database, recorder: Recorder, scheduler: CheckScheduler, *, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None, startup_grace_s: float = 0.0,
                 reliable: Callable[[], bool] = lambda: True) -> None:
        self.db = db
        self.recorder = recorder
        self.scheduler = scheduler
        self.clock = clock
        self.rng = rng or random.Random()
        self.startup_grace_s = startup_grace_s
        self._reliable = reliable
        self.runtimes: dict[int, Runtime] = {}
        # Every component's state, kept up to date on each transition: the recovery engine asks for the
        # whole fleet on every transition (blast radius), which must not cost a walk over every runtime.
        self._states: dict[int, ComponentState] = {}
        self._counts: Counter[ComponentState] = Counter()  # components per state, kept with _states
        self._states_lock = threading.Lock()  # check threads of different components change both
        self._fingerprint: tuple | None = None
        self._lock = threading.Lock()  # sync vs. sync (SIGHUP and the periodic job)

    # -- HealthView ------------------------------------------------------------------------------
    def state(self, component_id: int) -> ComponentState:
        rt = self.runtimes.get(component_id)
        return rt.tracker.state if rt else ComponentState.UNKNOWN

    def states(self) -> dict[int, ComponentState]:
        return dict(self._states)

    def flap_episode(self, component_id: int) -> int:
        rt = self.runtimes.get(component_id)
        return rt.tracker.flap_episode if rt else 0

    def view_reliable(self) -> bool:
        return self._reliable()

    def counts(self) -> dict[ComponentState, int]:
        with self._states_lock:
            return {state: n for state, n in self._counts.items() if n > 0}

    def report_results(self, component_id: int, results: Sequence[CheckResult]) -> None:
        """Count recovery's check results like scheduled ones (thresholds, DOWN→UP), then put the next
        scheduled check back at the tracker's delay (the DOWN backoff ends with the passes)."""
        rt = self.runtimes.get(component_id)
        if rt is None or not results:
            return
        try:
            with rt.judging:
                for result in results:
                    self._judge(rt, result, None)
                delay = rt.tracker.next_delay_s(self.rng)
            rt.expected_at = self.scheduler.run_check_after(rt.name, delay).timestamp()
        except Exception:  # recovery must never fail because of the health plane
            log.exception("reported results failed component=%s", rt.name)

    def _set_state(self, component_id: int, state: ComponentState | None) -> None:
        with self._states_lock:
            old = self._states.pop(component_id, None)
            if old is not None:
                self._counts[old] -= 1
            if state is not None:
                self._states[component_id] = state
                self._counts[state] += 1

    # -- the job ---------------------------------------------------------------------------------
    def run_check(self, component_id: int) -> None:
        rt = self.runtimes.get(component_id)
        if rt is None:
            return
        try:
            self._run_check(rt)
        except Exception:  # one component's bug is logged and backed off, never fatal
            log.exception("check failed component=%s", rt.name)
            self.scheduler.run_check_after(rt.name, rt.interval_s)

    def _run_check(self, rt: Runtime) -> None:
        started = self.clock.now()
        lateness_ms = max(0.0, (started.timestamp() - rt.expected_at) * 1000.0)
        result = get_checker(rt.spec.kind).check(rt.spec, timeout_s=rt.timeout_s)
        with rt.judging:
            self._judge(rt, result, lateness_ms)
            delay = rt.tracker.next_delay_s(self.rng)
        if abs(delay - rt.interval_s) > 1e-6:
            rt.expected_at = self.scheduler.run_check_after(rt.name, delay).timestamp()
        else:
            # The interval trigger fires at fixed steps from its start; skip steps a slow check overran.
            rt.expected_at += rt.interval_s
            now_s = self.clock.now().timestamp()
            if rt.expected_at < now_s:
                rt.expected_at += ((now_s - rt.expected_at) // rt.interval_s + 1) * rt.interval_s

    def _judge(self, rt: Runtime, result: CheckResult, lateness_ms: float | None) -> None:
        """Feed one result to the tracker and hand it (and any transition) to the recorder."""
        reliable = self._reliable()
        transition = rt.tracker.observe(result, result.checked_at) if reliable else None
        tracker = rt.tracker
        self.recorder.add_result(ResultItem(
            rt.id, result, lateness_ms, reliable,
            LiveState(tracker.state, tracker.since, tracker.consecutive_failures, tracker.consecutive_successes,
                      tracker.flap_episode)))
        if transition is not None:
            self._emit(rt, transition)

    def _emit(self, rt: Runtime, transition: Transition) -> None:
        self._set_state(rt.id, transition.to_state)
        log.info("state %s -> %s component=%s reason=%s", transition.from_state.value, transition.to_state.value,
                 rt.name, transition.reason)
        self.recorder.add_transition(TransitionItem(
            rt.id, rt.name, transition.from_state, transition.to_state, transition.at, transition.reason,
            rt.tracker.flap_episode))

    # -- registry sync ---------------------------------------------------------------------------
    def sync(self) -> None:
        """Bring runtimes and jobs in line with the registry; cheap when nothing changed."""
        with self._lock:
            try:
                self._sync()
            except Exception as exc:  # the database may be away: keep running what we have
                log.warning("registry sync failed: %s", str(exc).splitlines()[0])

    def _sync(self) -> None:
        with self.db.read() as session:
            fingerprint = tuple(session.execute(select(
                func.count(Component.id), func.coalesce(func.sum(Component.generation), 0),
                func.coalesce(func.max(Component.id), 0))).one())
            if fingerprint == self._fingerprint and not self._holds_due():
                return
            rows = list(session.scalars(select(Component)))
        now = self.clock.now()
        seen = set()
        for row in rows:
            seen.add(row.id)
            current = self.runtimes.get(row.id)
            if current is None or current.generation != row.generation:
                self._install(row, current, now)
            self._apply_hold(self.runtimes[row.id], row, now)
        for cid in [cid for cid in self.runtimes if cid not in seen]:
            rt = self.runtimes.pop(cid)
            self._set_state(cid, None)
            self.scheduler.unschedule_check(rt.name)
            log.info("component removed component=%s", rt.name)
        self._fingerprint = fingerprint

    def _holds_due(self) -> bool:
        """True when a timed pause may have expired (a pause that ends needs no registry change)."""
        return any(rt.hold is not None for rt in self.runtimes.values())

    def _install(self, row: Component, current: Runtime | None, now: datetime) -> None:
        config = TrackerConfig(interval_s=row.interval_s, failure_threshold=row.failure_threshold,
                               success_threshold=row.success_threshold, retry_interval_s=row.retry_interval_s,
                               startup_grace_s=self.startup_grace_s)
        source = current.tracker if current else None
        state = ComponentState(row.state) if source is None else source.state
        tracker = Tracker(
            config, now,
            state=state if state not in _HOLDS or source is not None else ComponentState.UNKNOWN,
            since=(source.since if source else row.state_since) or now,
            consecutive_failures=source.consecutive_failures if source else row.consecutive_failures,
            consecutive_successes=source.consecutive_successes if source else row.consecutive_successes,
            flap_episode=source.flap_episode if source else row.flap_episode,
        )
        rt = Runtime(row.id, row.name, row.generation, effective_check(row), row.interval_s, row.timeout_s,
                     tracker, 0.0, current.hold if current else None)
        self.runtimes[row.id] = rt
        self._set_state(row.id, tracker.state)
        if current is None or current.interval_s != row.interval_s:
            first = self.rng.uniform(0, row.interval_s) if current is None else row.interval_s
            rt.expected_at = self.scheduler.schedule_check(row.name, self.run_check, [row.id], interval_s=row.interval_s,
                                                           first_delay_s=first).timestamp()
            log.info("component %s component=%s interval=%gs", "added" if current is None else "changed",
                     row.name, row.interval_s)
        else:
            rt.expected_at = current.expected_at

    def _apply_hold(self, rt: Runtime, row: Component, now: datetime) -> None:
        hold = row.hold_at(now)
        wanted = None if hold is None else ComponentState(hold)
        state = rt.tracker.state
        if wanted is ComponentState.PAUSED and state is not ComponentState.PAUSED:
            if state is ComponentState.MAINTENANCE:
                self._emit(rt, rt.tracker.leave_maintenance(now))
            self._emit(rt, rt.tracker.pause(now, row.paused_reason or "paused"))
        elif wanted is ComponentState.MAINTENANCE and state is not ComponentState.MAINTENANCE:
            if state is ComponentState.PAUSED:
                self._emit(rt, rt.tracker.resume(now))
            self._emit(rt, rt.tracker.enter_maintenance(now))
        elif wanted is None and state is ComponentState.PAUSED:
            self._emit(rt, rt.tracker.resume(now))
        elif wanted is None and state is ComponentState.MAINTENANCE:
            self._emit(rt, rt.tracker.leave_maintenance(now))
        rt.hold = wanted
