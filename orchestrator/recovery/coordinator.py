"""The recovery coordinator: decides which incidents get a plan run, and runs them on its own pool.

The daemon's single writer thread calls :meth:`on_incident` and :meth:`on_state` after each commit;
both return at once: bookkeeping goes to one control thread, plan runs to a pool separate from the
health checks. At most ``limits.max_concurrent_recoveries`` runs act at once; a run waiting out its
settle time holds no such slot, so a burst of failures settles together instead of in waves.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FuturesTimeout

from sqlalchemy import select

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.config import Switches
from orchestrator.core.errors import ConflictError, InputError, NotFoundError
from orchestrator.core.states import ComponentState, IncidentStatus, Resolution
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, Incident
from orchestrator.incidents.lifecycle import IncidentEvent, active_incident, open_incident
from orchestrator.incidents.notifier import Notifier
from orchestrator.plans import Limits, PlanSet
from orchestrator.recovery import outage, records
from orchestrator.recovery.executor import PlanExecutor, RunOutcome, RunRequest
from orchestrator.recovery.fleet_probe import FleetProbe, probe_fleet
from orchestrator.recovery.guards import mass_outage
from orchestrator.recovery.health_view import HealthView
from orchestrator.recovery.reconcile import dead_running_rows, reconcile_incident

log = logging.getLogger("orchestrator.recovery")
S = IncidentStatus
#: Statuses a restarted daemon picks up again.
_RESUMABLE = (S.OPEN.value, S.RECOVERING.value, S.AWAITING_APPROVAL.value)
#: Pool threads beyond the acting slots, for runs still settling or queued for a slot.
WAITING_THREADS = 64
#: settle windows waited at most while the fleet looks widely broken but the guard has not tripped yet
MAX_SETTLE_ROUNDS = 3


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RecoveryCoordinator:
    """Guards, concurrency and lifecycle around :class:`PlanExecutor`."""

    def __init__(self, db: Database, plans: PlanSet | None, *, health: HealthView, clock: Clock = SYSTEM_CLOCK,
                 switches: Switches = Switches(), owner: str | None = None, rng: random.Random | None = None,
                 notifier: Notifier | None = None, settle_s: float | None = None,
                 approval_poll_s: float = 1.0, report: Callable[[str], None] | None = None) -> None:
        self.db, self.health, self.clock, self.settle_s = db, health, clock, settle_s
        self.owner = owner or default_owner()
        self._plans = plans
        self.notifier = notifier if notifier is not None else (
            Notifier(db, plans.notifications, clock=clock) if plans is not None else None)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[int, Future] = {}
        # Fixed at start: a reload changes plans and limits, but not the pool's size or the slots.
        slots = self.limits.max_concurrent_recoveries
        self._slots = threading.BoundedSemaphore(slots)
        self._pool = ThreadPoolExecutor(slots + WAITING_THREADS, thread_name_prefix="recovery")
        self._control = ThreadPoolExecutor(1, thread_name_prefix="recovery-control")
        self._probe_rng = random.Random()
        #: whether a mass-outage incident is open, as last seen (None: not looked yet); see outage.check
        self.outage_open: bool | None = None
        self.executor = PlanExecutor(db, health=health, clock=clock, owner=self.owner, rng=rng or random.Random(),
                                     error_handling_enabled=switches.error_handling_enabled, stop=self._stop,
                                     emit=self._emit, report=report, approval_poll_s=approval_poll_s)

    @property
    def limits(self) -> Limits:
        return self._plans.limits if self._plans is not None else Limits()

    @property
    def settle(self) -> float:
        """Seconds an automatic run waits first: ``settle_s`` if given, else the plans' ``limits.settle``."""
        return self.settle_s if self.settle_s is not None else self.limits.settle_s

    # -- called by the daemon ---------------------------------------------------------------------
    def on_incident(self, event: IncidentEvent) -> None:
        """After commit, for opened/reopened/resolved: notify, and start a run for a new incident."""
        self._emit(event)
        if event.kind in ("opened", "reopened") and event.component_id is not None:
            self._submit_control(self._consider, event.incident_id, False)

    def on_state(self, component_id: int, state: ComponentState) -> None:
        """After every transition: blast radius, and re-evaluation of incidents this change unblocks."""
        self._submit_control(self._after_state, component_id, state)

    def reconcile_on_start(self) -> None:
        """Settle rows left running by a dead process, then resume every unfinished incident (async)."""
        dead = dead_running_rows(self.db, self.owner, self.clock.now())
        with self.db.read() as session:
            resumable = set(session.scalars(select(Incident.id).where(
                Incident.status.in_(_RESUMABLE), Incident.component_id.is_not(None))))
        for incident_id in sorted(resumable | set(dead)):
            self._start(incident_id, resume=True, settle=False, before=(
                lambda rows=dead.get(incident_id): rows and reconcile_incident(
                    self.db, rows, self._plans, clock=self.clock, stop=self._stop)))

    def recover(self, component_name: str, plan: str | None = None, dry_run: bool = False, wait: bool = True) -> int:
        """Manual recovery: open or reuse the component's incident and run ``plan`` (default: its own)."""
        if self._plans is None:
            raise InputError("no plan file found (give --plans or set ORCHESTRATOR_PLANS)", field="--plans")
        with self.db.write() as session:
            row = session.scalar(select(Component).where(Component.name == component_name))
            if row is None:
                raise NotFoundError(f"no component named {component_name!r}", field="NAME")
            plan_name = plan or row.plan
            if plan_name is None:
                raise InputError(f"component {component_name!r} has no plan; give one with --plan", field="--plan")
            self._plans.get(plan_name)  # NotFoundError lists the plans
            existing = active_incident(session, row.id)
            event = None if existing else open_incident(
                session, component_id=row.id, component_name=row.name, at=self.clock.now(),
                reason="manual recovery", flap_episode=self.health.flap_episode(row.id))
            incident_id = existing.id if existing else event.incident_id
        if event is not None:
            self._emit(event)
        close = dry_run and event is not None and event.kind == "opened"
        future = self._start(incident_id, resume=False, settle=False, manual=True, dry_run=dry_run,
                             plan_name=plan_name, after=(lambda: self._close_dry_run(incident_id)) if close else None)
        if future is None:
            raise ConflictError(f"incident {incident_id} of {component_name!r} is already being recovered")
        if wait:
            future.result()
        return incident_id

    def reload(self, plans: PlanSet) -> None:
        """Use new plans from now on (runs in flight keep the plan they started with)."""
        self._plans = plans
        if self.notifier is not None:
            self.notifier.reload(plans.notifications)

    def shutdown(self, timeout_s: float) -> None:
        """Stop taking work, interrupt waits (backoff, verification, approval), wait ≤ timeout_s."""
        self._stop.set()
        self._control.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.wait_idle(timeout_s)
        if self.notifier is not None:
            self.notifier.flush(force=True)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no control work or run is in flight; True if idle within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s  # real time: this waits for threads, not for decisions
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self._submit_control(lambda: None).result(timeout=remaining)
            except FuturesTimeout:
                return False
            with self._lock:
                futures = list(self._active.values())
            if not futures:
                return True
            wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        return False

    # -- internals ----------------------------------------------------------------------------------
    def _emit(self, event: IncidentEvent) -> None:
        if self.notifier is not None:
            self.notifier.publish(event)

    def _submit_control(self, fn: Callable, *args) -> Future:
        try:
            return self._control.submit(self._guarded, fn, *args)
        except RuntimeError:  # shut down: nothing more to do
            done: Future = Future()
            done.set_result(None)
            return done

    @staticmethod
    def _guarded(fn: Callable, *args) -> None:
        try:
            fn(*args)
        except Exception:  # one bad decision is logged; it never kills the control thread
            log.exception("recovery coordinator task failed")

    def _consider(self, incident_id: int, resume: bool) -> None:
        outage.check(self)
        self._start(incident_id, resume=resume, settle=True)

    def _after_state(self, component_id: int, state: ComponentState) -> None:
        cleared = outage.check(self)
        for incident_id in outage.to_reevaluate(self, component_id, state, cleared):
            self._start(incident_id, resume=True, settle=True)

    def _start(self, incident_id: int, *, resume: bool, settle: bool, manual: bool = False, dry_run: bool = False,
               plan_name: str | None = None, before: Callable[[], object] | None = None,
               after: Callable[[], object] | None = None) -> Future | None:
        """Submit a run for the incident unless one is already in flight; the Future, or None."""
        with self._lock:
            if incident_id in self._active or self._stop.is_set():
                return None
            try:
                future = self._pool.submit(self._run, incident_id, resume, settle, manual, dry_run, plan_name, before,
                                           after)
            except RuntimeError:
                return None
            self._active[incident_id] = future
        future.add_done_callback(lambda _f: self._forget(incident_id))
        return future

    def _forget(self, incident_id: int) -> None:
        with self._lock:
            self._active.pop(incident_id, None)

    def _run(self, incident_id: int, resume: bool, settle: bool, manual: bool, dry_run: bool,
             plan_name: str | None, before: Callable[[], object] | None,
             after: Callable[[], object] | None = None) -> RunOutcome | None:
        try:
            if before is not None and before():
                return RunOutcome.RESOLVED  # reconciled: verified healthy
            if settle and not self._settle(incident_id):
                return RunOutcome.STOPPED
            if not self._take_slot():
                return RunOutcome.STOPPED
            try:
                return self._run_plan(incident_id, resume, manual, dry_run, plan_name)
            finally:
                self._slots.release()
        except Exception:  # a bug in one run must not take the pool (or the daemon) down
            log.exception("incident=%s recovery run failed", incident_id)
            return None
        finally:
            if after is not None:
                self._guarded(after)

    def _settle(self, incident_id: int) -> bool:
        """Wait before the first decision unless the failure is the component's own; False on shutdown.

        1. Look around (dependencies and a sample of the fleet): the component's own failure acts now.
        2. Otherwise wait the settle window, so failures that belong together are judged together.
        3. While the sample still fails widely and the blast-radius guard (which counts DOWN components,
           and lags under load) has not tripped, look and wait again: at most MAX_SETTLE_ROUNDS windows.
        """
        if self.settle <= 0:
            return True
        for _ in range(MAX_SETTLE_ROUNDS):
            probe = self._probe(incident_id)
            if probe is not None and probe.isolated:
                return True
            if self._stop.wait(self.settle):
                return False
            if probe is None or not probe.widespread or self._outage_tripped():
                return True
        return True

    def _probe(self, incident_id: int) -> FleetProbe | None:
        try:
            with self.db.read() as session:
                component_id = session.scalar(select(Incident.component_id).where(Incident.id == incident_id))
            return None if component_id is None else probe_fleet(self.db, component_id, self._probe_rng)
        except Exception:  # an inconclusive look around is no reason to hurry: settle once
            log.exception("incident=%s fleet probe failed; settling", incident_id)
            return None

    def _outage_tripped(self) -> bool:
        states = self.health.states()
        down = sum(1 for state in states.values() if state is ComponentState.DOWN)
        limits = self.limits
        return mass_outage(down, len(states), limits.max_unhealthy_fraction, limits.min_components)

    def _take_slot(self) -> bool:
        """Wait for one of the ``max_concurrent_recoveries`` slots; False on shutdown."""
        while not self._stop.is_set():
            if self._slots.acquire(timeout=0.2):
                return True
        return False

    def _run_plan(self, incident_id: int, resume: bool, manual: bool, dry_run: bool,
                  plan_name: str | None) -> RunOutcome | None:
        plans = self._plans
        with self.db.read() as session:
            incident = session.get(Incident, incident_id)
            row = session.get(Component, incident.component_id) if incident and incident.component_id else None
        name = plan_name or (row.plan if row is not None else None)
        if incident is None or row is None or incident.status == S.RESOLVED.value:
            return RunOutcome.GONE
        if plans is None or name is None or name not in plans.plans:
            log.info("component=%s incident=%s no recovery plan (%s): observing only", row.name, incident_id, name)
            return None
        return self.executor.run(RunRequest(incident_id, name, plans.plans[name], plans.limits, manual=manual,
                                            dry_run=dry_run, resume=resume))

    def _close_dry_run(self, incident_id: int) -> None:
        """A dry run opened an incident only to journal what would run: close it again."""
        with self.db.write() as session:
            if records.set_status(session, incident_id, S.RESOLVED, now=self.clock.now(), resolution=Resolution.MANUAL.value,
                                  resolved_at=self.clock.now(), reason="dry run",
                                  allowed_from=(S.OPEN, S.RECOVERING, S.BLOCKED)):
                log.info("incident=%s opened for a dry run: closed", incident_id)
