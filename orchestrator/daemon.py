"""The service lifecycle: start, serve, reload on SIGHUP, stop cleanly on SIGTERM/SIGINT.

Start-up order (each step needs the one before):

1. Database reachable and at the current schema; the one-daemon-per-database lock.
2. Plan file valid (a broken file stops the start: never half-applied).
3. Writer thread, scheduler, then registry sync (first checks spread over each interval).
4. Recovery coordinator: its loop claims the incident rows that need work (those a dead process left
   are taken over: what it left running is settled, and each component is checked fresh first).
5. READY=1 to systemd; WATCHDOG=1 from a scheduler job, so a stuck scheduler stops the pings.

SIGTERM stops scheduling, lets in-flight checks end (bounded by their timeouts), flushes, exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import update

from orchestrator import __version__
from orchestrator.core import sdnotify
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.config import Switches
from orchestrator.db.engine import Database
from orchestrator.db.instance_lock import instance_lock
from orchestrator.db.migrate import ensure_schema
from orchestrator.db.models import Component, DaemonInstance
from orchestrator.health.checkers import close_checkers
from orchestrator.health.monitor import Monitor
from orchestrator.health.scheduler import CheckScheduler, pool_size
from orchestrator.health.sentinels import Sentinels
from orchestrator.history.recorder import Recorder
from orchestrator.history.retention import DEFAULT_RAW_RETENTION_S, DEFAULT_ROLLUP_RETENTION_S, prune

log = logging.getLogger(__name__)

SYNC_INTERVAL_S = 2.0  # registry changes take effect within this (+ one check)
HEARTBEAT_INTERVAL_S = 5.0
RETENTION_INTERVAL_S = 600.0
SENTINEL_INTERVAL_S = 5.0
NOTIFY_FLUSH_INTERVAL_S = 2.0  # grouped incident notifications go out once their window closes


@dataclass
class DaemonSettings:
    db_url: str
    plans_path: Path | None = None
    workers: int | None = None
    sentinels: list[str] = field(default_factory=list)
    raw_retention_s: float = DEFAULT_RAW_RETENTION_S
    rollup_retention_s: float = DEFAULT_ROLLUP_RETENTION_S
    reopen_window_s: float = 300.0
    startup_grace_s: float = 0.0
    run_for_s: float | None = None  # stop by itself after this long (demos, benchmarks)
    shutdown_timeout_s: float = 8.0


class Daemon:
    def __init__(self, settings: DaemonSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.db: Database | None = None
        self.monitor: Monitor | None = None
        self.recorder: Recorder | None = None
        self.coordinator = None
        self.plans = None
        self._skipped_reported = 0

    # -- signals -------------------------------------------------------------------------------
    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def request_reload(self, *_: object) -> None:
        self._reload.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
            signal.signal(signal.SIGHUP, self.request_reload)

    # -- lifecycle -------------------------------------------------------------------------------
    def run(self) -> int:
        s = self.settings
        db = self.db = Database(s.db_url)
        ensure_schema(db)
        lock = instance_lock(db)
        lock.acquire()
        try:
            return self._serve(db)
        finally:
            lock.release()
            db.dispose()

    def _serve(self, db: Database) -> int:
        s = self.settings
        self.plans = self._load_plans()
        switches = Switches.from_env()
        recorder = self.recorder = Recorder(db, clock=self.clock, reopen_window_s=s.reopen_window_s)
        workers = s.workers or self._auto_workers(db)
        scheduler = CheckScheduler(workers)
        sentinels = Sentinels(s.sentinels)
        monitor = self.monitor = Monitor(db, recorder, scheduler, clock=self.clock,
                                         startup_grace_s=s.startup_grace_s, reliable=sentinels.reliable)
        self.coordinator = self._make_coordinator(db, monitor, switches)
        self._register_instance(db)
        recorder.start()
        # Started (paused) before the first sync: a job added to a stopped scheduler gets its first run
        # time only at start, and one whose spread-out first run passed while thousands of jobs were
        # being added would fire a whole interval late. Paused, nothing runs (or competes for the
        # interpreter) until every job is in.
        scheduler.start(paused=True)
        monitor.sync()
        scheduler.resume()
        self.coordinator.start()  # after the first sync: its guards read the live view
        scheduler.add_periodic("sync", monitor.sync, SYNC_INTERVAL_S, first_delay_s=SYNC_INTERVAL_S)
        scheduler.add_periodic("heartbeat", self._heartbeat, HEARTBEAT_INTERVAL_S)
        scheduler.add_periodic("retention", self._retention, RETENTION_INTERVAL_S, first_delay_s=60)
        if s.sentinels:
            sentinels.probe()
            scheduler.add_periodic("sentinels", sentinels.probe, SENTINEL_INTERVAL_S)
        notifier = getattr(self.coordinator, "notifier", None)
        if notifier is not None:
            scheduler.add_periodic("notify", notifier.flush, NOTIFY_FLUSH_INTERVAL_S)
        watchdog = sdnotify.watchdog_interval_s()
        if watchdog:
            scheduler.add_periodic("watchdog", lambda: sdnotify.notify("WATCHDOG=1"), watchdog)
        self._install_signals()
        sdnotify.notify(f"READY=1\nSTATUS=watching {len(monitor.runtimes)} components")
        log.info("started instance=%s components=%d workers=%d db=%s", self.instance_id, len(monitor.runtimes),
                 workers, db.dialect)
        deadline = None if s.run_for_s is None else self.clock.monotonic() + s.run_for_s
        while not self._stop.is_set():
            timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - self.clock.monotonic()))
            self._stop.wait(timeout)
            if self._reload.is_set():
                self._reload.clear()
                self._do_reload()
            if deadline is not None and self.clock.monotonic() >= deadline:
                break
        return self._shutdown(scheduler, recorder, db)

    def _shutdown(self, scheduler: CheckScheduler, recorder: Recorder, db: Database) -> int:
        sdnotify.notify("STOPPING=1")
        log.info("stopping: letting in-flight checks finish")
        scheduler.shutdown(wait=True)  # each in-flight check ends within its own timeout
        close_checkers()
        if self.coordinator is not None:
            self.coordinator.shutdown(timeout_s=self.settings.shutdown_timeout_s)
        recorder.stop(timeout_s=self.settings.shutdown_timeout_s)
        try:
            self._heartbeat(stopped=True)
        except Exception as exc:  # the database may be what is failing; the exit must not be
            log.warning("could not record the stop: %s", str(exc).splitlines()[0])
        if recorder.dropped:
            log.error("stopped with %d check results dropped during database outages", recorder.dropped)
        log.info("stopped instance=%s written=%d dropped=%d", self.instance_id, recorder.written, recorder.dropped)
        return 0

    # -- parts ---------------------------------------------------------------------------------
    def _load_plans(self):
        if self.settings.plans_path is None:
            return None
        from orchestrator.plans import load_plans

        return load_plans(self.settings.plans_path)

    def _make_coordinator(self, db: Database, monitor: Monitor, switches: Switches):
        """The recovery engine. It holds the instance lock's promise: no other daemon runs on this
        database, so runs leased by another daemon instance are taken over at once."""
        from orchestrator.recovery.coordinator import RecoveryCoordinator

        return RecoveryCoordinator(db, self.plans, health=monitor, clock=self.clock, switches=switches,
                                   owner=self.instance_id, exclusive=True)

    def _do_reload(self) -> None:
        """SIGHUP: re-read the plan file (an invalid one is refused; the old one stays) and the registry."""
        try:
            plans = self._load_plans()
        except Exception as exc:
            log.error("reload refused, keeping the previous plans: %s", exc)
        else:
            self.plans = plans
            if self.coordinator is not None and plans is not None:
                self.coordinator.reload(plans)
            log.info("reloaded plans from %s", self.settings.plans_path)
        if self.monitor is not None:
            self.monitor.sync()

    @staticmethod
    def _auto_workers(db: Database) -> int:
        with db.read() as session:
            rows = session.query(Component.interval_s, Component.timeout_s).all()
        rate = sum(1.0 / r.interval_s for r in rows)
        return pool_size(rate, max((r.timeout_s for r in rows), default=2.0))

    def _register_instance(self, db: Database) -> None:
        now = self.clock.now()
        with db.write() as session:
            session.add(DaemonInstance(id=self.instance_id, host=socket.gethostname(), pid=os.getpid(),
                                       version=__version__, started_at=now, heartbeat_at=now))

    def _heartbeat(self, stopped: bool = False) -> None:
        assert self.db is not None and self.recorder is not None and self.monitor is not None
        now = self.clock.now()
        skipped = self.monitor.scheduler.skipped_runs
        if skipped > self._skipped_reported:
            log.warning("falling behind: %d check runs skipped since the last heartbeat (the previous run of "
                        "the same check was still going; see --workers)", skipped - self._skipped_reported)
            self._skipped_reported = skipped
        values = {"heartbeat_at": now, "dropped_results": self.recorder.dropped,
                  "view_reliable": self.monitor.view_reliable()}
        if stopped:
            values["stopped_at"] = now
        try:
            with self.db.write_conn() as conn:
                conn.execute(update(DaemonInstance).where(DaemonInstance.id == self.instance_id).values(**values))
        except Exception as exc:
            if stopped:
                raise
            log.warning("heartbeat failed: %s", str(exc).splitlines()[0])

    def _retention(self) -> None:
        assert self.db is not None
        try:
            prune(self.db, self.clock.now(), raw_s=self.settings.raw_retention_s,
                  rollup_s=self.settings.rollup_retention_s)
        except Exception as exc:
            log.warning("retention failed: %s", str(exc).splitlines()[0])
