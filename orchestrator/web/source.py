"""Where the web app gets its data: the running daemon's live objects, or the database alone.

``orchestrator run --http`` serves from a :class:`DaemonSource` (the scheduler, the trackers' states,
the recorder's counters, the coordinator); ``orchestrator web`` from a :class:`DatabaseSource`, which
reads what daemons wrote (their heartbeats and the components' last states). Pages, API and
``/metrics`` take either; what only a daemon knows (histograms, scheduler liveness) is None here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.config import Switches
from orchestrator.core.errors import InputError
from orchestrator.core.states import ComponentState
from orchestrator.db.engine import Database
from orchestrator.db.models import DaemonInstance
from orchestrator.history.drops import merged
from orchestrator.history.stats import Histogram, StatsSnapshot

if TYPE_CHECKING:
    from orchestrator.daemon import Daemon
    from orchestrator.history.pings import PingIntake
    from orchestrator.history.recorder import Recorder
    from orchestrator.recovery.coordinator import RecoveryCoordinator

#: a daemon whose heartbeat is older than this does not count as running (DatabaseSource)
HEARTBEAT_FRESH_S = 20.0
#: how often a long-poll served from the database alone looks for a new degradation level
DB_POLL_S = 0.25
#: the scheduler is stuck when its heartbeat job has not run for this many heartbeat intervals
STUCK_AFTER_HEARTBEATS = 3


@dataclass(frozen=True)
class LiveFacts:
    """The daemon's own health, read once per request."""

    mode: str  # "daemon" (in the daemon's process) or "database" (read from heartbeats)
    daemons_alive: int
    scheduler_running: bool | None  # None: not knowable from the database
    scheduler_stalled_s: float | None  # seconds since the scheduler's last heartbeat job
    view_reliable: bool
    dropped_results: int
    db_writes_healthy: bool | None
    skipped_runs: int | None
    stats: StatsSnapshot | None = None
    #: what the recorder did not write, by orchestrator.history.drops.NAMES
    drops: dict[str, int] = field(default_factory=dict)
    #: seconds of the current spell of failed database writes (None: writes succeed, or not knowable)
    db_writes_failing_s: float | None = None
    #: why the daemon stopped acting: its instance lock is lost (None while held, or not knowable)
    lock_lost: str | None = None
    states: dict[int, ComponentState] = field(default_factory=dict)  # live tracker states (daemon only)


class WebSource(Protocol):
    """What the web app reads and the one way it starts a recovery."""

    db: Database
    clock: Clock

    def facts(self) -> LiveFacts:
        """The daemon's health now."""

    def coordinator(self) -> RecoveryCoordinator:
        """The recovery coordinator that runs plans started from the API."""

    def component_latency(self) -> dict[int, Histogram] | None:
        """Each component's check latency histogram since the process started (None: no daemon here)."""

    def version(self) -> Hashable | None:
        """A value that moves whenever the data behind the page may have changed; None when unknowable
        (then nothing is reused: :mod:`orchestrator.web.cache`)."""

    def degradation(self) -> dict[str, dict[str, Any]]:
        """Every scope's published degradation document, by scope ({} before any was published)."""

    def degradation_wait(self, scope: str, after: int, timeout_s: float) -> dict[str, Any] | None:
        """The scope's document once its version is not ``after``, or after ``timeout_s``."""

    def pings(self) -> PingIntake:
        """Where ``/ping/<token>`` hands push monitors' pings (orchestrator.history.pings)."""

    def close(self) -> None:
        """Stop what this source started."""


class DaemonSource:
    """Live objects of the daemon this web server runs inside."""

    def __init__(self, daemon: Daemon) -> None:
        assert daemon.db is not None
        self.daemon = daemon
        self.db = daemon.db
        self.clock = daemon.clock

    def facts(self) -> LiveFacts:
        d = self.daemon
        plane, timer, recorder = d.plane, d.timer, d.recorder
        stalled = None if d.last_heartbeat_mono is None else self.clock.monotonic() - d.last_heartbeat_mono
        return LiveFacts(
            mode="daemon", daemons_alive=1,
            scheduler_running=bool(timer and timer.running),
            scheduler_stalled_s=stalled,
            view_reliable=plane.live.view_reliable() if plane else True,
            dropped_results=recorder.dropped if recorder else 0,
            db_writes_healthy=recorder.db_healthy if recorder else None,
            drops=d.drop_counts() if recorder and plane else {},
            db_writes_failing_s=recorder.writes_failing_s() if recorder else None,
            lock_lost=d.lock_lost,
            skipped_runs=plane.dispatcher.coalesced if plane else None,
            stats=recorder.stats.snapshot() if recorder else None,
            states=plane.live.states() if plane else {},
        )

    def component_latency(self) -> dict[int, Histogram] | None:
        recorder = self.daemon.recorder
        return None if recorder is None else recorder.stats.component_latency()

    def version(self) -> Hashable | None:
        recorder = self.daemon.recorder
        return None if recorder is None else recorder.stats.batches

    def degradation(self) -> dict[str, dict[str, Any]]:
        service = self.daemon.degradation
        return {} if service is None else service.documents()

    def degradation_wait(self, scope: str, after: int, timeout_s: float) -> dict[str, Any] | None:
        service = self.daemon.degradation
        return None if service is None else service.wait(scope, after, timeout_s)

    def coordinator(self) -> RecoveryCoordinator:
        if self.daemon.coordinator is None:
            raise InputError("the daemon has no recovery coordinator yet", field="name")
        return self.daemon.coordinator

    def pings(self) -> PingIntake:
        """The daemon's own intake: written by its recorder and judged at once."""
        if self.daemon.plane is None:
            from orchestrator.history.pings import PingRefused

            raise PingRefused(503, "the daemon is starting; ping again shortly", retry_after_s=1.0)
        return self.daemon.plane.pings

    def close(self) -> None:
        """The daemon owns its coordinator and stops it itself."""


class DatabaseSource:
    """The database alone (``orchestrator web``): daemons' heartbeats stand in for live objects."""

    def __init__(self, db: Database, *, plans_path: Path | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.db = db
        self.clock = clock
        self.plans_path = plans_path
        self._coordinator: RecoveryCoordinator | None = None
        self._pings: PingIntake | None = None
        self._ping_recorder: Recorder | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()  # set by close(): long-polls answer at once

    def facts(self) -> LiveFacts:
        fresh_after = self.clock.now() - timedelta(seconds=HEARTBEAT_FRESH_S)
        with self.db.read() as session:
            rows = session.execute(select(DaemonInstance.view_reliable, DaemonInstance.dropped_results,
                                          DaemonInstance.drops, DaemonInstance.writes_failing_since).where(
                DaemonInstance.stopped_at.is_(None), DaemonInstance.heartbeat_at > fresh_after)).all()
        failing = [r.writes_failing_since for r in rows if r.writes_failing_since is not None]
        return LiveFacts(mode="database", daemons_alive=len(rows), scheduler_running=None, scheduler_stalled_s=None,
                         view_reliable=all(r.view_reliable for r in rows),
                         dropped_results=sum(int(r.dropped_results or 0) for r in rows),
                         db_writes_healthy=False if failing else None, skipped_runs=None,
                         drops=merged(*(r.drops or {} for r in rows)),
                         db_writes_failing_s=max(((self.clock.now() - at).total_seconds() for at in failing),
                                                 default=None))

    def component_latency(self) -> dict[int, Histogram] | None:
        return None  # only the process that checks knows each check's latency

    def version(self) -> Hashable | None:
        return None  # other processes write the database: no change can be seen coming

    def degradation(self) -> dict[str, dict[str, Any]]:
        from orchestrator.degradation import store

        with self.db.read() as session:
            return store.stored(session, self.clock.now())

    def degradation_wait(self, scope: str, after: int, timeout_s: float) -> dict[str, Any] | None:
        """Polls the database (another process publishes) every ``DB_POLL_S`` until the version moves."""
        deadline = time.monotonic() + timeout_s  # a wait on the kernel: real seconds (see core.clock)
        while True:
            doc = self.degradation().get(scope)
            left = deadline - time.monotonic()
            if doc is None or doc["version"] != after or left <= 0 or self._closed.is_set():
                return doc
            self._closed.wait(min(DB_POLL_S, left))

    def coordinator(self) -> RecoveryCoordinator:
        """A coordinator of this process, built on first use exactly as `orchestrator recover` builds one."""
        from orchestrator.plans import load_plans
        from orchestrator.recovery.coordinator import RecoveryCoordinator
        from orchestrator.recovery.health_view import DbHealthView

        with self._lock:
            if self._coordinator is None:
                if self.plans_path is None:
                    raise InputError("no plan file found (give --plans or set ORCHESTRATOR_PLANS)", field="plan")
                self._coordinator = RecoveryCoordinator(
                    self.db, load_plans(self.plans_path), health=DbHealthView(self.db, clock=self.clock),
                    clock=self.clock, switches=Switches.from_env(), settle_s=0.0)
            return self._coordinator

    def pings(self) -> PingIntake:
        """An intake of this process, writing through a recorder of its own (started on the first ping):
        buffered while the database is away; the daemon reads them from the table (PingFeed)."""
        from orchestrator.history.pings import PingIntake
        from orchestrator.history.recorder import PingItem, Recorder

        with self._lock:
            if self._pings is None:
                recorder = self._ping_recorder = Recorder(self.db, clock=self.clock)
                recorder.start()
                self._pings = PingIntake(self.db, lambda ping: recorder.add_ping(PingItem(ping, judged=False)),
                                         clock=self.clock)
            return self._pings

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._coordinator is not None:
                self._coordinator.shutdown(timeout_s=10.0)
            if self._ping_recorder is not None:
                self._ping_recorder.stop(timeout_s=5.0)  # the pings still buffered: written, or counted
