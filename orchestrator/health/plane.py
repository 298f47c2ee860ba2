"""The check plane assembled: dispatcher, lanes or worker processes, judge, live view, registry sync.

Data flows in that order: the dispatch thread pops due checks from the :class:`~.dispatch.Dispatcher`,
the lanes (threads here, or worker processes) run them, the :class:`~.judge.Judge` feeds the trackers
and hands results and transitions to the recorder, the :class:`~.live.LiveView` shows the verdicts.
:class:`~.sync.RegistrySync` turns registry changes into messages for the judge.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from orchestrator.core.check_result import CheckResult, Ping
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.db.engine import Database
from orchestrator.degradation.signals import FleetSignals
from orchestrator.health.dispatch import Dispatcher, Due
from orchestrator.health.judge import Judge, Pinged
from orchestrator.health.lanes import ThreadLanes
from orchestrator.health.live import LiveView
from orchestrator.health.procs import ProcessLanes, default_processes
from orchestrator.health.sync import RegistrySync
from orchestrator.history.pings import PingFeed, PingIntake
from orchestrator.history.recorder import PingItem, Recorder

__all__ = ["CheckPlane"]

log = logging.getLogger(__name__)


class CheckPlane:
    """Everything between the registry and the recorder. ``processes`` 0 checks in this process; with
    ``adapt``, worker processes are added when the fleet's check rate grows past what the current
    ones are planned for (never fewer while running)."""

    def __init__(self, db: Database, recorder: Recorder, *, clock: Clock = SYSTEM_CLOCK, processes: int = 0,
                 adapt: bool = False,
                 max_threads: int | None = None, startup_grace_s: float = 0.0,
                 reliable: Callable[[], bool] = lambda: True, rng: random.Random | None = None) -> None:
        rng = rng or random.Random()
        self.live = LiveView(reliable)
        #: fleet-wide error rate, latency and lateness for the degradation rules
        self.signals = FleetSignals(clock)
        self._adapt_processes = adapt
        self.processes = processes
        self._retired: list[ThreadLanes] = []
        if self.processes:
            self.lanes: ThreadLanes | ProcessLanes = ProcessLanes(self.processes, self._deliver, lost=self._lost)
        else:
            self.lanes = ThreadLanes(self._sink, clock=clock, max_threads=max_threads)
        self.dispatcher = Dispatcher(self.lanes, clock=clock, rng=rng)
        self._dispatching = threading.Event()  # set: the dispatch thread stops
        self._dispatch_thread: threading.Thread | None = None
        self.judge = Judge(recorder, self.dispatcher, self.live, clock=clock, rng=rng, reliable=reliable)
        self.live.connect(self.judge.report_results)
        self.registry = RegistrySync(db, self.judge, clock=clock, startup_grace_s=startup_grace_s)
        self.recorder = recorder
        #: pings of push monitors to this process's web server: written by the recorder, judged at once
        self.pings = PingIntake(db, self._pinged_here, clock=clock)
        #: pings written by another process (`orchestrator web`): read from the table (the "pings" job)
        self.ping_feed = PingFeed(db, self._pinged_elsewhere)

    def poll_pings(self) -> int:
        """The "pings" job: pings written by another process, read only while a push monitor is judged
        (an idle fleet without one costs no query a second). Nothing is missed meanwhile: the feed reads
        from where it stopped, so a ping written just before its monitor was installed comes with the
        first poll after."""
        if not len(self.judge.push):
            return 0
        return self.ping_feed.poll()

    def _pinged_here(self, ping: Ping) -> None:
        self.recorder.add_ping(PingItem(ping, judged=True))
        self.judge.send(Pinged(ping))

    def _pinged_elsewhere(self, ping: Ping) -> None:
        self.judge.send(Pinged(ping))

    def _sink(self, due: Due, result: CheckResult, lateness_ms: float) -> None:
        self.signals.observe(result.ok, result.latency_ms, lateness_ms, due.component_id)
        self.judge.submit(due.component_id, result, lateness_ms)

    def _deliver(self, component_id: int, result: CheckResult, lateness_ms: float) -> None:
        self.signals.observe(result.ok, result.latency_ms, lateness_ms, component_id)
        self.judge.submit(component_id, result, lateness_ms)

    def _lost(self) -> None:
        """A check worker process died: the dispatcher's next tick restarts it and re-dispatches its checks."""
        self.dispatcher.wake()

    def start(self) -> None:
        """Start the judge and the dispatch thread (it sleeps until something in its heap is due)."""
        self.judge.start()
        self._dispatch_thread = threading.Thread(target=self.dispatcher.run, args=(self._dispatching,),
                                                 name="dispatch", daemon=True)
        self._dispatch_thread.start()

    def sync(self) -> None:
        """Registry changes to the judge (the periodic job, SIGHUP, start-up)."""
        summary = self.registry.sync()
        if self._adapt_processes and summary is not None and (summary.added or summary.changed):
            self.adapt(self.registry.rate())

    def adapt(self, checks_per_s: float) -> None:
        """Add worker processes when the fleet's check rate outgrew the current ones."""
        want = default_processes(checks_per_s)
        if want <= self.processes:
            return
        log.info("check rate %.0f/s: %d check worker processes (were %d)", checks_per_s, want, self.processes)
        if isinstance(self.lanes, ProcessLanes):
            self.lanes.grow(want)
        else:
            self.lanes = ProcessLanes(want, self._deliver, lost=self._lost)
            old = self.dispatcher.use_lanes(self.lanes)
            assert isinstance(old, ThreadLanes)
            self._retired.append(old)  # its checks in flight finish and report; stopped with the plane
        self.processes = want

    def stop(self, timeout_s: float) -> None:
        """Stop checking: no more dispatching, running checks finish (each within its timeout), then
        everything is judged."""
        self._dispatching.set()
        self.dispatcher.wake()
        if self._dispatch_thread is not None:
            self._dispatch_thread.join(timeout_s)
        for lanes in [self.lanes, *self._retired]:
            lanes.stop(timeout_s)
        self.judge.stop(timeout_s)
