"""The judge: one thread that owns every tracker, fed through one queue, judging in batches.

Live component state has exactly one owner in memory. Check results from the lanes, registry
changes and operator holds from the sync, and verification probes from the recovery engine all reach
the trackers through :class:`Judge`'s queue; nothing else touches a tracker. The thread sleeps until
something arrives (or a push monitor's deadline passes): a control message or a failing result is
judged at once, passing results gather for ``JUDGE_PERIOD_S`` first (one wake-up per batch, not per
result; an idle fleet costs no wake-up at all between results). Then it drains the queue and, per result:

1. feeds the tracker (thresholds, flapping, holds) unless the view is unreliable;
2. asks the tracker when to check next and moves the due time in the dispatcher (retry after a
   first failure, DOWN backoff, the normal cadence);
3. hands the batch of results and transitions to the recorder (the one writer of history and of
   the state mirror) and the new states to the live view.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.states import ComponentState
from orchestrator.degradation.early_warning import Evidence
from orchestrator.health.dispatch import Dispatcher
from orchestrator.health.live import LiveView
from orchestrator.health.push import Ping, PushWatch
from orchestrator.health.tracker import Tracker, TrackerConfig, Transition
from orchestrator.history.recorder import LiveState, Recorder, ResultItem, TransitionItem

log = logging.getLogger(__name__)

#: How long passing results gather before they are judged (one wake-up per batch, not per result);
#: a failing result or a control message ends the gathering at once.
JUDGE_PERIOD_S = 0.05
#: The longest the thread sleeps with nothing queued and no push deadline sooner (a safety net: every
#: arrival wakes it).
IDLE_WAIT_S = 5.0
_HOLDS = (ComponentState.PAUSED, ComponentState.MAINTENANCE)
#: success pings kept for push monitors the judge does not know yet (bounded: a ping costs no memory
#: beyond this however many unknown ones arrive)
EARLY_PINGS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Install:
    """A component to judge and check, new or changed; ``restore`` is its persisted tracker state,
    ``seed`` the early warning's baseline from the rollups (used for a component new to this judge; a
    changed one keeps what its tracker has seen)."""

    component_id: int
    name: str
    spec: CheckSpec
    config: TrackerConfig
    timeout_s: float
    criticality: str
    restore: LiveState
    seed: Evidence = Evidence()
    #: added while the daemon runs (not its first sync): first checked soon, not anywhere in its interval
    soon: bool = False
    #: a push monitor's last success ping (wall time, from the database): its next one is expected after it
    last_success: datetime | None = None


@dataclass(frozen=True, slots=True)
class Remove:
    component_id: int


@dataclass(frozen=True, slots=True)
class Hold:
    """The operator hold in force: PAUSED, MAINTENANCE or None."""

    component_id: int
    wanted: ComponentState | None
    reason: str


@dataclass(frozen=True, slots=True)
class Pinged:
    """A push monitor's ping (orchestrator.health.push): judged like a result, never scheduled."""

    ping: Ping


@dataclass(frozen=True, slots=True)
class Verified:
    """Verification probes after a recovery action: judged like any result."""

    component_id: int
    results: tuple[CheckResult, ...]


class _Judged:
    __slots__ = ("id", "name", "interval_s", "tracker")

    def __init__(self, cid: int, name: str, interval_s: float, tracker: Tracker) -> None:
        self.id, self.name, self.interval_s, self.tracker = cid, name, interval_s, tracker


class Judge:
    """Owns the trackers; ``start()`` runs its thread, ``stop()`` drains the queue and ends it."""

    def __init__(self, recorder: Recorder, dispatcher: Dispatcher, live: LiveView, *, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None, reliable: Callable[[], bool] = lambda: True) -> None:
        self.recorder = recorder
        self.dispatcher = dispatcher
        self.live = live
        self.clock = clock
        self.rng = rng or random.Random()
        self._reliable = reliable
        self._judged: dict[int, _Judged] = {}
        self._results: deque[tuple[int, CheckResult, float]] = deque()
        self._control: deque[Install | Remove | Hold | Verified | Pinged] = deque()
        #: the push monitors' deadlines (monotonic), owned by this thread like the trackers
        self.push = PushWatch()
        #: the last ping of each push monitor not installed yet (a ping between `component add` and the
        #: next sync, or during start-up): judged once it is (at most EARLY_PINGS_KEPT kept)
        self._early_pings: dict[int, Ping] = {}
        self._wake = threading.Event()
        #: the thread sleeps with nothing queued: the next producer wakes it
        self._asleep = False
        #: a failing result or a control message is queued: judge without gathering
        self._urgent = False
        self._stop = threading.Event()
        #: times the thread woke up to drain (batches judged, empty ones included)
        self.wakeups = 0
        self._thread: threading.Thread | None = None
        #: results of components removed while their check ran: dropped knowingly, never written
        self.dropped_removed = 0
        self.judged = 0

    # -- producers (any thread) ---------------------------------------------------------------
    def submit(self, component_id: int, result: CheckResult, lateness_ms: float) -> None:
        """A lane's finished check. A failing one wakes the judge at once, since its retry (or a DOWN)
        is detection latency; a passing one wakes it only if it sleeps (it then gathers more for
        ``JUDGE_PERIOD_S``)."""
        self._results.append((component_id, result, lateness_ms))
        if not result.ok:
            self._urgent = True
            self._wake.set()
        elif self._asleep:  # set before the thread looks at the queue: this append is seen, or we wake it
            self._asleep = False
            self._wake.set()

    def send(self, message: Install | Remove | Hold | Verified | Pinged) -> None:
        """A registry change, hold or verification; judged before the next results."""
        self._control.append(message)
        self._urgent = True
        self._wake.set()

    def report_results(self, component_id: int, results: Sequence[CheckResult]) -> None:
        """HealthView.report_results: verification probes count as check results."""
        self.send(Verified(component_id, tuple(results)))

    def names(self) -> dict[int, str]:
        """The components being judged, by id (a copy)."""
        return {cid: j.name for cid, j in list(self._judged.items())}

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="judge", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Judge everything queued, then end the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        else:
            self.drain()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._asleep = True
            if not self._results and not self._control:
                self._wake.wait(self._idle_wait_s())
            self._asleep = False
            self._wake.clear()
            if self._results and not self._urgent and not self._stop.is_set():
                # passing results only: gather for a period (a failure or a control message ends it)
                self._wake.wait(JUDGE_PERIOD_S)
                self._wake.clear()
            self._urgent = False
            self.wakeups += 1
            self._drain_safely()
        self._drain_safely()

    def _idle_wait_s(self) -> float:
        """With nothing queued: until the next push monitor's deadline, at most IDLE_WAIT_S (the judge's
        thread: it owns the push watch). A wait on the kernel, in real seconds."""
        deadline = self.push.next_deadline() if len(self.push) else None
        if deadline is None:
            return IDLE_WAIT_S
        return min(IDLE_WAIT_S, max(0.0, deadline - self.clock.monotonic()))

    def _drain_safely(self) -> None:
        try:
            self.drain()
        except Exception:  # a bug in one batch must not end judging
            log.exception("judging a batch failed")

    # -- the judge thread ---------------------------------------------------------------------
    def drain(self) -> int:
        """Judge every queued message and result (the judge thread; tests call it directly)."""
        results: list[ResultItem] = []
        transitions: list[TransitionItem] = []
        while self._control:
            self._apply(self._control.popleft(), results, transitions)
        n = len(self._results)
        if n:
            reliable = self._reliable()
            mono, wall = self.clock.monotonic(), self.clock.now()
            popleft = self._results.popleft
            for _ in range(n):
                cid, result, lateness_ms = popleft()
                self._judge(cid, result, lateness_ms, reliable, results, transitions, (mono, wall))
        if len(self.push):
            self._late_pushes(results, transitions)
        if results or transitions:
            self.judged += len(results)
            self.recorder.add_batch(results, transitions)
        return len(results)

    def _judge(self, cid: int, result: CheckResult, lateness_ms: float | None, reliable: bool,
               results: list[ResultItem], transitions: list[TransitionItem],
               clocks: tuple[float, datetime] | None) -> None:
        judged = self._judged.get(cid)
        if judged is None:
            self.dropped_removed += 1
            return
        tracker = judged.tracker
        mono = clocks[0] if clocks is not None else self.clock.monotonic()
        transition = tracker.observe(result, result.checked_at, mono) if reliable else None
        if transition is not None:
            self._emit(judged, transition, transitions)
        next_at = None
        if clocks is not None:  # a scheduled run: move its next due time
            delay = tracker.next_delay_s(self.rng)
            nominal = abs(delay - judged.interval_s) < 1e-9
            due = self.dispatcher.done(cid, None if nominal else delay, timed_out=result.timed_out)
            if due is not None:
                next_at = clocks[1] + timedelta(seconds=due - clocks[0])
        results.append(ResultItem(cid, result, lateness_ms, reliable, _live(tracker, next_at)))

    def _late_pushes(self, results: list[ResultItem], transitions: list[TransitionItem]) -> None:
        deadline = self.push.next_deadline()
        mono = self.clock.monotonic()
        if deadline is None or deadline > mono:
            return
        reliable = self._reliable()
        for verdict in self.push.due(self.clock.now(), mono):
            self._judge_push(verdict.component_id, verdict.result, verdict.lateness_ms, reliable, results, transitions)

    def _judge_push(self, cid: int, result: CheckResult, lateness_ms: float | None, reliable: bool,
                    results: list[ResultItem], transitions: list[TransitionItem]) -> None:
        """A push monitor's verdict: judged like a check result; its next expected success is its due time."""
        judged = self._judged.get(cid)
        if judged is None:
            self.dropped_removed += 1
            return
        transition = judged.tracker.observe(result, result.checked_at, self.clock.monotonic()) if reliable else None
        if transition is not None:
            self._emit(judged, transition, transitions)
        results.append(ResultItem(cid, result, lateness_ms, reliable, _live(judged.tracker,
                                                                             self.push.next_expected(cid))))

    def _emit(self, judged: _Judged, transition: Transition, transitions: list[TransitionItem]) -> None:
        self.live.set(judged.id, transition.to_state, judged.tracker.flap_episode)
        if transition.from_state is ComponentState.UNKNOWN and transition.to_state is ComponentState.UP:
            # 10,000 of these at start-up: recorded, not logged one by one
            log.debug("state unknown -> up component=%s", judged.name)
        else:
            log.info("state %s -> %s component=%s reason=%s", transition.from_state.value,
                     transition.to_state.value, judged.name, transition.reason)
        transitions.append(TransitionItem(
            judged.id, judged.name, transition.from_state, transition.to_state, transition.at, transition.reason,
            judged.tracker.flap_episode))

    def _apply(self, message: Install | Remove | Hold | Verified | Pinged, results: list[ResultItem],
               transitions: list[TransitionItem]) -> None:
        if isinstance(message, Install):
            self._install(message)
            early = self._early_pings.pop(message.component_id, None)
            if early is not None and message.component_id in self.push:
                self._pinged(early, results, transitions)
        elif isinstance(message, Pinged):
            self._pinged(message.ping, results, transitions)
        elif isinstance(message, Remove):
            self.push.remove(message.component_id)
            self._early_pings.pop(message.component_id, None)
            self._judged.pop(message.component_id, None)
            self.live.drop(message.component_id)
            self.dispatcher.remove(message.component_id)
            self.recorder.forget(message.component_id)
        elif isinstance(message, Hold):
            judged = self._judged.get(message.component_id)
            if judged is not None:
                for transition in _hold_transitions(judged.tracker, message, self.clock.now(), self.clock.monotonic()):
                    self._emit(judged, transition, transitions)
        else:
            self._verified(message, results, transitions)

    def _pinged(self, ping: Ping, results: list[ResultItem], transitions: list[TransitionItem]) -> None:
        if ping.component_id not in self.push:
            if ping.kind != "start" and (ping.component_id in self._early_pings
                                         or len(self._early_pings) < EARLY_PINGS_KEPT):
                self._early_pings[ping.component_id] = ping
            return
        result = self.push.ping(ping, self.clock.now(), self.clock.monotonic())
        if result is not None:
            self._judge_push(ping.component_id, result, None, self._reliable(), results, transitions)

    def _verified(self, message: Verified, results: list[ResultItem], transitions: list[TransitionItem]) -> None:
        judged = self._judged.get(message.component_id)
        if judged is None or message.component_id in self.push:
            return  # a push monitor's verification passed on its own success ping: nothing new to judge
        reliable = self._reliable()
        for result in message.results:
            self._judge(judged.id, result, None, reliable, results, transitions, None)
        # A verified component is checked next at its normal interval, whatever backoff it was in.
        self.dispatcher.reschedule(judged.id, judged.interval_s)

    def _install(self, m: Install) -> None:
        current = self._judged.get(m.component_id)
        now = self.clock.now()
        if current is not None:
            t = current.tracker
            restore = LiveState(t.state, t.since, t.consecutive_failures, t.consecutive_successes, t.flap_episode)
            evidence = t.evidence
        else:
            restore, evidence = m.restore, m.seed
        state = restore.state
        if current is None and state in _HOLDS:
            state = ComponentState.UNKNOWN  # the hold is applied again by the Hold that follows
        tracker = Tracker(m.config, now, state=state, since=restore.since or now,
                          consecutive_failures=restore.consecutive_failures,
                          consecutive_successes=restore.consecutive_successes, flap_episode=restore.flap_episode,
                          evidence=evidence, started_mono=self.clock.monotonic())
        self._judged[m.component_id] = _Judged(m.component_id, m.name, m.config.interval_s, tracker)
        self.live.set(m.component_id, tracker.state, tracker.flap_episode)
        if m.spec.kind == "push":  # pinged, never polled: its deadline is watched instead
            self.dispatcher.remove(m.component_id)
            self.push.install(m.component_id, m.spec, m.config.interval_s, m.last_success, now,
                              self.clock.monotonic())
            return
        self.push.remove(m.component_id)
        self.dispatcher.add(m.component_id, m.spec, interval_s=m.config.interval_s, timeout_s=m.timeout_s,
                            criticality=m.criticality, soon=m.soon)


def _live(tracker: Tracker, next_at: datetime | None) -> LiveState:
    return LiveState(tracker.state, tracker.since, tracker.consecutive_failures, tracker.consecutive_successes,
                     tracker.flap_episode, next_at)


def _hold_transitions(tracker: Tracker, hold: Hold, now: datetime, mono: float) -> list[Transition]:
    """The tracker moves that bring it to the wanted hold (pause wins over maintenance)."""
    state, wanted, out = tracker.state, hold.wanted, []
    if wanted is ComponentState.PAUSED and state is not ComponentState.PAUSED:
        if state is ComponentState.MAINTENANCE:
            out.append(tracker.leave_maintenance(now, mono))
        out.append(tracker.pause(now, hold.reason or "paused"))
    elif wanted is ComponentState.MAINTENANCE and state is not ComponentState.MAINTENANCE:
        if state is ComponentState.PAUSED:
            out.append(tracker.resume(now, mono))
        out.append(tracker.enter_maintenance(now, hold.reason))
    elif wanted is None and state is ComponentState.PAUSED:
        out.append(tracker.resume(now, mono))
    elif wanted is None and state is ComponentState.MAINTENANCE:
        out.append(tracker.leave_maintenance(now, mono))
    return out
