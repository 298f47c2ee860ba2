"""The service lifecycle: start, serve, reload on SIGHUP, stop cleanly on SIGTERM/SIGINT.

Start-up order (each step needs the one before):

1. Database reachable and at the current schema; the one-daemon-per-database lock.
2. Plan file valid (a broken file stops the start: never half-applied).
3. Writer thread, check plane (judge and dispatch threads; lanes or worker processes), first registry
   sync (first checks spread over each interval), then the timer: sync, heartbeat, retention.
4. Recovery coordinator: its loop claims the incident rows that need work (those a dead process left
   are taken over: what it left running is settled, and each component is checked fresh first).
5. READY=1 to systemd; WATCHDOG=1 from a timer job, so a stuck timer stops the pings.

SIGTERM stops the timer, lets in-flight checks end (bounded by their timeouts; worker processes
drain too), judges and flushes everything, exits 0.

The instance lock is re-verified every ``VERIFY_INTERVAL_S`` from the main loop (monotonic): a lock
whose session ended is re-taken at once; one that cannot be re-taken (another daemon has it) stops
the daemon without another write or action, says so on /healthz, /readyz and in the log, and exits
``EXIT_LOCK_LOST`` for its supervisor to restart it (it then waits for, or refuses beside, the other).
This protects "one daemon acts per database" (issue 14's I7) and with it invariant 1 (exactly once),
without breaking invariant 6: the loop stops only loudly.
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

from sqlalchemy import func, select, update

from orchestrator import __version__
from orchestrator.core import sdnotify
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.config import Switches
from orchestrator.core.defaults import HEARTBEAT_INTERVAL_S
from orchestrator.core.errors import LockLostError, LockUnconfirmed, first_line
from orchestrator.core.redaction import remember, secret_values
from orchestrator.db.engine import Database
from orchestrator.db.instance_lock import VERIFY_INTERVAL_S, instance_lock
from orchestrator.db.migrate import ensure_schema
from orchestrator.db.models import Component, DaemonInstance
from orchestrator.db.watch import DatabaseWatch
from orchestrator.health.checkers import close_checkers
from orchestrator.health.plane import CheckPlane
from orchestrator.health.procs import default_processes
from orchestrator.health.scheduler import Timer
from orchestrator.health.sentinels import Sentinels
from orchestrator.history.drops import WRITES_FAILING_SHOWN_S, describe, merged
from orchestrator.history.pings import FEED_INTERVAL_S as PING_FEED_INTERVAL_S
from orchestrator.history.recorder import Recorder
from orchestrator.history.retention import DEFAULT_RAW_RETENTION_S, DEFAULT_ROLLUP_RETENTION_S, prune
from orchestrator.plans.coverage import plan_warning

log = logging.getLogger(__name__)

SYNC_INTERVAL_S = 2.0  # registry changes take effect within this (+ one check)
RETENTION_INTERVAL_S = 600.0
SENTINEL_INTERVAL_S = 5.0
NOTIFY_FLUSH_INTERVAL_S = 2.0  # grouped incident notifications go out once their window closes
#: exit status when the instance lock was lost (EX_TEMPFAIL: a supervisor restarts the service)
EXIT_LOCK_LOST = 75


@dataclass
class DaemonSettings:
    db_url: str
    plans_path: Path | None = None
    workers: int | None = None  # most threads of the fast check lane (per process)
    check_processes: int | None = None  # worker processes for checks; None: chosen from the fleet
    sentinels: list[str] = field(default_factory=list)
    raw_retention_s: float = DEFAULT_RAW_RETENTION_S
    rollup_retention_s: float = DEFAULT_ROLLUP_RETENTION_S
    reopen_window_s: float = 300.0
    startup_grace_s: float = 0.0
    run_for_s: float | None = None  # stop by itself after this long (demos, benchmarks)
    shutdown_timeout_s: float = 8.0
    #: serve the web page, API and /metrics here (HOST:PORT), None for no web server
    http: str | None = None
    #: orchestrator.web.state.WebSettings for that server (token, metrics per component)
    web: object | None = None
    #: where the published degradation levels are written for applications that read files (None: nowhere)
    degradation_file: Path | None = None
    #: where the incident pages are served (config ``public_url``): notifications link there
    public_url: str | None = None


class Daemon:
    def __init__(self, settings: DaemonSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.clock = clock
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.db: Database | None = None
        self.plane: CheckPlane | None = None
        self.recorder: Recorder | None = None
        self.coordinator = None
        #: the degradation evaluator (orchestrator.degradation.service.DegradationService)
        self.degradation = None
        self.plans = None
        self.plan_warning: str | None = None
        self.timer: Timer | None = None
        self._behind_reported = 0
        #: clock.monotonic() of the heartbeat job's last run: /healthz tells a stuck scheduler by it
        self.last_heartbeat_mono: float | None = None
        #: the web server when settings.http is set (its ``url`` is what to open)
        self.web = None
        #: why this daemon stopped acting: its instance lock is gone (None while held)
        self.lock_lost: str | None = None
        #: one log line when degradation notifications cannot reach the database, one when they can again
        self._notify_watch = DatabaseWatch(log, "degradation notifications", clock=clock)
        #: the lock's session ended and the database could not be asked since (logged once per outage)
        self._lock_unconfirmed = False
        self._lock = None

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
        """Start, serve until SIGTERM/SIGINT (or ``run_for_s``), stop; 0 on a clean stop.

        The graceful handlers go in first: a stop requested during start-up is honoured between the
        start-up steps (before the lock, before anything runs) or by the main loop, never by dying."""
        self._install_signals()
        db = self.db = Database(self.settings.db_url)
        try:
            ensure_schema(db)
            if self._stopped_during_startup("database checked"):
                return 0
            lock = self._lock = instance_lock(db)
            lock.acquire()
            try:
                return self._serve(db)
            finally:
                lock.release()
        finally:
            db.dispose()

    def _stopped_during_startup(self, step: str) -> bool:
        if self._stop.is_set():
            log.info("stop requested during start-up (after: %s): exiting before serving", step)
            return True
        return False

    def _serve(self, db: Database) -> int:
        s = self.settings
        self.plans = self._load_plans()
        if self._stopped_during_startup("plans loaded"):
            return 0
        switches = Switches.from_env()
        recorder = self.recorder = Recorder(db, clock=self.clock, reopen_window_s=s.reopen_window_s)
        processes = s.check_processes if s.check_processes is not None else self._auto_processes(db)
        sentinels = Sentinels(s.sentinels)
        plane = self.plane = CheckPlane(db, recorder, clock=self.clock, processes=processes,
                                        adapt=s.check_processes is None, max_threads=s.workers,
                                        startup_grace_s=s.startup_grace_s, reliable=sentinels.reliable)
        self.degradation = self._make_degradation(db, plane)
        self.coordinator = self._make_coordinator(db, plane, switches, recorder)
        self._check_plans(db, learn_secrets=True)
        if s.http is not None:  # before anything runs: a port in use stops the start, nothing to undo
            self.web = self._start_web(s.http)
        self._register_instance(db)
        recorder.start()
        plane.start()
        plane.ping_feed.poll()  # where pings written by other processes start (before the monitors' restore)
        plane.sync()  # every component in the heap, first checks spread over their intervals
        self.degradation.start()  # after the first sync: it reads the live view
        self.coordinator.start()  # after the first sync: its guards read the live view
        timer = self.timer = Timer(clock=self.clock)
        timer.add_periodic("sync", plane.sync, SYNC_INTERVAL_S, first_delay_s=SYNC_INTERVAL_S)
        timer.add_periodic("pings", plane.poll_pings, PING_FEED_INTERVAL_S)
        timer.add_periodic("heartbeat", self._heartbeat, HEARTBEAT_INTERVAL_S)
        timer.add_periodic("retention", self._retention, RETENTION_INTERVAL_S, first_delay_s=60)
        if s.sentinels:
            sentinels.probe()
            timer.add_periodic("sentinels", sentinels.probe, SENTINEL_INTERVAL_S)
        notifier = getattr(self.coordinator, "notifier", None)
        from orchestrator.incidents.notify_send import set_public_url

        set_public_url(s.public_url)  # the notify step's messages link to the incident page too
        if notifier is not None:
            notifier.public_url = s.public_url
            timer.add_periodic("notify", self._notify, NOTIFY_FLUSH_INTERVAL_S)
        watchdog = sdnotify.watchdog_interval_s()
        if watchdog:
            timer.add_periodic("watchdog", lambda: sdnotify.notify("WATCHDOG=1"), watchdog)
        timer.start()
        components = plane.registry.components
        sdnotify.notify(f"READY=1\nSTATUS=watching {components} components")
        log.info("started instance=%s components=%d check_processes=%d db=%s", self.instance_id, components,
                 processes, db.dialect)
        deadline = None if s.run_for_s is None else self.clock.monotonic() + s.run_for_s
        verify_at = self.clock.monotonic() + VERIFY_INTERVAL_S
        while not self._stop.is_set():
            timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - self.clock.monotonic()))
            self._stop.wait(min(timeout, max(0.0, verify_at - self.clock.monotonic())))
            if self.clock.monotonic() >= verify_at:
                verify_at = self.clock.monotonic() + VERIFY_INTERVAL_S
                if not self._lock_held():
                    return self._shutdown(timer, plane, recorder, write=False)
            if self._reload.is_set():
                self._reload.clear()
                self._do_reload()
            if deadline is not None and self.clock.monotonic() >= deadline:
                break
        return self._shutdown(timer, plane, recorder)

    def _lock_held(self) -> bool:
        """Verify the instance lock (re-taken when its session ended); False when it is lost."""
        try:
            if not self._lock.verify():
                log.warning("instance lock: its database session had ended; re-taken on a new one")
            self._lock_unconfirmed = False
            return True
        except LockUnconfirmed as exc:
            if not self._lock_unconfirmed:  # once per outage, not every verification
                log.warning("instance lock: not confirmed while the database is unreachable (asked again every "
                            "%.0f s; nothing is written or claimed meanwhile): %s", VERIFY_INTERVAL_S, exc)
            self._lock_unconfirmed = True
            return True
        except LockLostError as exc:
            self.lock_lost = str(exc)
            log.error("instance lock lost, stopping without acting or writing (exit %d): %s", EXIT_LOCK_LOST, exc)
            return False

    def _shutdown(self, timer: Timer, plane: CheckPlane, recorder: Recorder, *, write: bool = True) -> int:
        """Stop everything; ``write=False`` (the lock is lost) writes and acts no more: the recovery
        loop and the writer stop first, the web server last (its /healthz and /readyz say why)."""
        sdnotify.notify("STOPPING=1")
        if not write:
            recorder.stop_writing()
            if self.coordinator is not None:
                self.coordinator.shutdown(timeout_s=self.settings.shutdown_timeout_s)
        if self.degradation is not None:
            self.degradation.stop()  # first: its long-polls answer, so the web server stops at once
        if self.web is not None and write:
            self.web.stop()
        log.info("stopping: letting in-flight checks finish")
        timer.shutdown(wait=True)  # no more syncs
        plane.stop(timeout_s=self.settings.shutdown_timeout_s)  # no more dispatching; in-flight checks end
        close_checkers()
        if self.coordinator is not None:
            self.coordinator.shutdown(timeout_s=self.settings.shutdown_timeout_s)
        recorder.stop(timeout_s=self.settings.shutdown_timeout_s, write=write)  # counts what it did not write
        if write:
            try:
                self._heartbeat(stopped=True)
            except Exception as exc:  # the database may be what is failing; the exit must not be
                log.warning("could not record the stop: %s", first_line(exc))
        drops = self.drop_counts()
        if any(n for name, n in drops.items() if name != "results_removed"):
            log.error("stopped with rows not written: %s", describe(drops))
        # every counter by name, zeros too: the one line a supervisor or a test reads at the end
        counters = " ".join(f"{name}={n}" for name, n in drops.items())
        log.info("stopped instance=%s written=%d dropped=%d %s", self.instance_id, recorder.written,
                 sum(n for name, n in drops.items() if name.startswith("results_")), counters)
        if self.web is not None and not write:
            self.web.stop()
        return 0 if write else EXIT_LOCK_LOST

    def drop_counts(self) -> dict[str, int]:
        """What was not written, by orchestrator.history.drops.NAMES (the judge's removed results included)."""
        assert self.recorder is not None and self.plane is not None
        return merged(self.recorder.drops.snapshot(), {"results_removed": self.plane.judge.dropped_removed})

    # -- parts ---------------------------------------------------------------------------------
    def _load_plans(self):
        if self.settings.plans_path is None:
            return None
        from orchestrator.plans import load_plans

        return load_plans(self.settings.plans_path)

    def _make_coordinator(self, db: Database, plane: CheckPlane, switches: Switches, recorder: Recorder):
        """The recovery engine. It holds the instance lock's promise: no other daemon runs on this
        database, so runs leased by another daemon instance are taken over at once."""
        from orchestrator.recovery.coordinator import POLL_S, RecoveryCoordinator

        coordinator = RecoveryCoordinator(db, self.plans, health=plane.live, clock=self.clock, switches=switches,
                                          owner=self.instance_id, exclusive=True, tick_s=POLL_S,
                                          degradation=self.degradation.automation_level)
        recorder.on_transitions(coordinator.wake)  # a new incident is looked at once committed
        return coordinator

    def _make_degradation(self, db: Database, plane: CheckPlane):
        """The degradation evaluator; the overload level it applies to the orchestrator stretches checks here
        (UP low/normal components, at most 2x: orchestrator.degradation.actions)."""
        from orchestrator.degradation import actions
        from orchestrator.degradation.service import DegradationService

        def apply(level) -> None:
            shed = level.value != "normal"
            live = plane.live
            plane.dispatcher.set_shedding(
                (lambda cid, criticality: actions.check_factor(level, criticality, live.state(cid))) if shed else None)

        policy = self.plans.degradation if self.plans is not None else None
        return DegradationService(db, plane.live, plane.signals, policy=policy, clock=self.clock,
                                  file_path=self.settings.degradation_file, apply=apply)

    def _notify(self) -> None:
        """Incident notifications, then degradation level changes (each its own unit of work)."""
        from orchestrator.degradation.notify import flush as flush_degradation

        notifier = self.coordinator.notifier
        notifier.flush()
        try:
            flush_degradation(self.db, notifier.config, clock=self.clock, sender=notifier.sender)
        except Exception as exc:  # the database may be away: the rows wait (said once, not every flush)
            self._notify_watch.failed(exc)
        else:
            self._notify_watch.ok()

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
            if self.degradation is not None and plans is not None:
                self.degradation.reload(plans.degradation)
            log.info("reloaded plans from %s", self.settings.plans_path)
        if self.plane is not None:
            self.plane.sync()
        if self.db is not None:
            self._check_plans(self.db, learn_secrets=True)

    def _check_plans(self, db: Database, *, learn_secrets: bool = False) -> None:
        """Warn (once per change) about components whose plan is unknown, for the log and `status`
        (the heartbeat stores it). With ``learn_secrets`` (start, reload), also learn every
        component's secret values, so that whatever is logged about them is masked."""
        try:
            with db.read() as session:
                warning = plan_warning(session, self.plans)
                if learn_secrets:
                    rows = session.scalars(select(Component)).all()
                    remember(value for row in rows for value in secret_values(row))
        except Exception as exc:  # the database may be away; the next heartbeat tries again
            log.warning("could not check plans: %s", first_line(exc))
            return
        if warning != self.plan_warning:
            if warning is not None:
                log.warning("recovery disabled for some components: %s", warning)
            elif self.plan_warning is not None:
                log.info("every component's plan is known again")
            self.plan_warning = warning

    def _start_web(self, address: str):
        """The page, API and /metrics on their own threads, reading this daemon's live objects."""
        from orchestrator.web import server
        from orchestrator.web.source import DaemonSource
        from orchestrator.web.state import WebSettings

        server.share_the_interpreter()
        return server.start(DaemonSource(self), address, self.settings.web or WebSettings())

    @staticmethod
    def _auto_processes(db: Database) -> int:
        """Worker processes for the fleet's check rate (0: check in this process)."""
        with db.read() as session:
            rate = session.scalar(select(func.coalesce(func.sum(1.0 / Component.interval_s), 0.0)))
        return default_processes(float(rate or 0.0))

    def _register_instance(self, db: Database) -> None:
        now = self.clock.now()
        with db.write() as session:
            session.add(DaemonInstance(id=self.instance_id, host=socket.gethostname(), pid=os.getpid(),
                                       version=__version__, started_at=now, heartbeat_at=now,
                                       plan_warning=self.plan_warning))

    def _heartbeat(self, stopped: bool = False) -> None:
        assert self.db is not None and self.recorder is not None and self.plane is not None
        now = self.clock.now()
        self.last_heartbeat_mono = self.clock.monotonic()
        behind = self.plane.dispatcher.coalesced
        if behind > self._behind_reported:
            log.warning("falling behind: %d due checks coalesced since the last heartbeat (the previous run of "
                        "the same check was still going)", behind - self._behind_reported)
            self._behind_reported = behind
        if not stopped:
            self._check_plans(self.db)  # components added or changed since: a registry change needs no HUP
        drops = self.drop_counts()
        failing_s = self.recorder.writes_failing_s()
        shown = failing_s is not None and failing_s >= WRITES_FAILING_SHOWN_S
        values = {"heartbeat_at": now, "view_reliable": self.plane.live.view_reliable(),
                  "dropped_results": sum(n for name, n in drops.items() if name.startswith("results_")),
                  "drops": {name: n for name, n in drops.items() if n},
                  "writes_failing_since": self.recorder.failing_since if shown else None,
                  "plan_warning": self.plan_warning}
        if stopped:
            values["stopped_at"] = now
        try:
            with self.db.write_conn() as conn:
                conn.execute(update(DaemonInstance).where(DaemonInstance.id == self.instance_id).values(**values))
        except Exception as exc:
            if stopped:
                raise
            log.warning("heartbeat failed: %s", first_line(exc))

    def _retention(self) -> None:
        assert self.db is not None
        try:
            prune(self.db, self.clock.now(), raw_s=self.settings.raw_retention_s,
                  rollup_s=self.settings.rollup_retention_s)
        except Exception as exc:
            log.warning("retention failed: %s", first_line(exc))

