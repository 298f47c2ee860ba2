"""The recovery coordinator: a loop over the incident rows that need work, each claimed and run on a pool.

The loop (one thread; the model is healthchecks.io's ``sendalerts``) looks at the rows when woken and
at least every ``tick_s``; each look:

1. renews the run leases of this process's runs in flight (their expiry is judged on the database clock);
2. opens or closes the mass-outage incident from the health plane's counts, and sizes the action slots;
3. asks the database which incidents need work (:mod:`orchestrator.recovery.worklist`), claims each
   by compare-and-set on its run lease, and runs it on the recovery pool.

The rows are the only queue: an incident the recorder opened, a retry that came due, an approval, a
blocked incident whose cause cleared, an owner that died are all found there. What the loop is told in
memory only says *when* to look: :meth:`RecoveryCoordinator.wake` (the daemon's recorder calls it after
every commit that wrote a transition, so a new incident is looked at as soon as it is in the database;
a run that ended and a reload call it too), and the end of the earliest wait this process wrote
(``next_attempt_at``, kept on the monotonic clock). In between, the loop sleeps up to ``tick_s``: the
daemon's is ``POLL_S`` (1 s), a safety poll for what only the rows say (an approval or a manual
recovery another process wrote, a blocked incident whose cause cleared without a transition: the
sentinels, the degradation level), where a fixed 100 ms look cost the idle daemon two queries every
tick, most of its CPU. A run
that raises is caught, recorded on the incident (``last_error``) and picked up again after a backoff;
one whose process died is taken over when its lease expires, or at once by the next daemon (only one
runs per database). The same coordinator also serves ``orchestrator recover`` (manual runs) without
claiming anything else.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from orchestrator.components.windows import silenced
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.config import Switches
from orchestrator.core.errors import ConflictError, InputError, LeaseLost, NotFoundError, first_line
from orchestrator.core.redaction import redact, secret_values
from orchestrator.core.states import ACTIVE_INCIDENT_STATUSES, IncidentStatus
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, Incident
from orchestrator.db.watch import DatabaseWatch
from orchestrator.health.checkers import probe_now
from orchestrator.incidents import status
from orchestrator.incidents.lifecycle import active_incident, any_orphaned, close_orphaned, open_incident
from orchestrator.incidents.notifier import Notifier
from orchestrator.incidents.notify_send import send
from orchestrator.plans import Limits, PlanSet
from orchestrator.plugins.contract import StrategyContext
from orchestrator.recovery import claims, outage, runs, worklist
from orchestrator.recovery.decisions import blocked
from orchestrator.recovery.executor import PlanExecutor
from orchestrator.recovery.health_view import HealthView
from orchestrator.recovery.retry import run_error_delay_s
from orchestrator.recovery.slots import ActionSlots, default_limit
from orchestrator.recovery.snapshot import MANUAL_KEY
from orchestrator.recovery.targets import component_view
from orchestrator.recovery.work import GONE, Engine, RunEnd, RunOutcome, RunRequest
from orchestrator.resilience.deadlines import WallDeadlines

log = logging.getLogger("orchestrator.recovery")
S = IncidentStatus
#: Seconds between two looks at the incident rows when nothing wakes the loop (two indexed queries; a
#: look that claimed something is followed by another at once, so a burst is taken up without waiting
#: a tick per incident). The default for a coordinator on its own (``orchestrator recover``, tests).
TICK_S = 0.1
#: The daemon's ``tick_s``: its recorder wakes the loop on every transition it commits and the loop
#: wakes itself at the end of every wait it wrote, so this only bounds how late the loop sees rows
#: other processes wrote (an approval from the CLI or the web, ``recover``) and blocked incidents whose
#: cause cleared with no transition (sentinels answering again, the degradation level).
POLL_S = 1.0
#: Runs in flight at once (each a pool thread); most wait on verification, few hold an action slot.
MAX_RUNS = 128
#: ``wait_idle`` treats an incident due within this many seconds as work still to come.
IDLE_HORIZON_S = 1.0
#: how often the loop looks for active incidents whose component row is gone (lifecycle.close_orphaned)
ORPHAN_SWEEP_S = 5.0


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RecoveryCoordinator:
    """The claim loop, the pool, and manual recoveries around :class:`PlanExecutor`."""

    def __init__(self, db: Database, plans: PlanSet | None, *, health: HealthView, clock: Clock = SYSTEM_CLOCK,
                 switches: Switches = Switches(), owner: str | None = None, rng: random.Random | None = None,
                 notifier: Notifier | None = None, settle_s: float | None = None,
                 report: Callable[[str], None] | None = None, tick_s: float = TICK_S,
                 lease_s: float = claims.LEASE_S, exclusive: bool = False,
                 degradation: Callable[[], str] | None = None) -> None:
        """``exclusive``: this is the one daemon holding the database's instance lock, so leases held by
        other daemons are free (they are dead). ``settle_s`` overrides ``limits.settle``. ``degradation``
        says which degradation level's action table applies to automatic steps (NORMAL without it)."""
        self.db, self.health, self.clock, self.settle_s = db, health, clock, settle_s
        self.owner = owner or default_owner()
        self.tick_s, self.lease_s, self.exclusive = tick_s, lease_s, exclusive
        self._plans = plans
        self.notifier = notifier if notifier is not None else (
            Notifier(db, plans.notifications, clock=clock, silences=silenced) if plans is not None else None)
        self._stop = threading.Event()
        #: set by wake(): look at the rows now, not at the end of the tick
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[int, claims.Claim] = {}
        self._futures: dict[int, Future[RunEnd]] = {}
        #: runs whose lease could not be given back (the database was away): retried every tick
        self._unreleased: dict[int, tuple[claims.Claim, RunEnd]] = {}
        self._inherited: set[int] = set()
        self._claiming = False
        self._thread: threading.Thread | None = None
        self._ticks = self._last_claimed = 0
        self._orphans_at = 0.0  # clock.monotonic() of the next orphan sweep
        self._renewed_at = 0.0
        #: the loop's one log line per database outage (lost / back), not one per turn
        self.db_watch = DatabaseWatch(log, "recovery loop", clock=clock)
        #: the waits this process wrote into next_attempt_at, kept on the monotonic clock (invariant 7)
        self._waits = WallDeadlines[int]()
        #: the blast-radius verdict as last seen (None: not looked yet); see outage.check
        self.outage_open: bool | None = None
        self.slots = ActionSlots(self._slot_limit())
        self._pool = ThreadPoolExecutor(MAX_RUNS, thread_name_prefix="recovery")
        self.engine = Engine(db, health, clock, self.owner, self._stop, self.slots, rng or random.Random(),
                             switches.error_handling_enabled, report or (lambda _line: None), lease_s,
                             degradation=degradation or (lambda: "normal"), waits=self._waits)
        self.executor = PlanExecutor(self.engine)

    @property
    def plans(self) -> PlanSet | None:
        """The plan file in use (None: none loaded)."""
        return self._plans

    @property
    def limits(self) -> Limits:
        return self._plans.limits if self._plans is not None else Limits()

    @property
    def settle(self) -> float:
        """Seconds an automatic run may wait first: ``settle_s`` if given, else ``limits.settle``."""
        return self.settle_s if self.settle_s is not None else self.limits.settle_s

    # -- the daemon's side ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the claim loop. Incidents active now were left by an earlier process: each is checked
        fresh before anything acts on it."""
        with self.db.read() as session:
            self._inherited = set(session.scalars(select(Incident.id).where(
                Incident.status.in_([s.value for s in ACTIVE_INCIDENT_STATUSES]), Incident.component_id.is_not(None))))
        self._claiming = True
        self._start_loop()

    def reload(self, plans: PlanSet) -> None:
        """Use new plans from now on (runs in flight keep the plan they started with); incidents blocked
        for want of a plan are picked up again at the next tick."""
        self._plans = plans
        if self.notifier is not None:
            self.notifier.reload(plans.notifications)
        self.wake()

    def wake(self) -> None:
        """Look at the incident rows now (any thread; cheap: sets an event). The daemon's recorder calls
        it after committing a transition, since the incident it opened or resolved is in the rows."""
        self._wake.set()

    def shutdown(self, timeout_s: float) -> None:
        """Stop claiming, interrupt waits (backoff, verification), wait ≤ timeout_s for runs to end."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout_s  # real time: this waits for threads, not for decisions
        while self._active and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.notifier is not None:
            self.notifier.flush(force=True)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until the loop has looked twice since the call and found nothing to do, no run is in
        flight and no incident is due within IDLE_HORIZON_S; True if so within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        first = self._ticks
        while time.monotonic() < deadline:
            if self._ticks >= first + 2 and self._idle():
                return True
            time.sleep(0.02)
        return False

    # -- manual recoveries (orchestrator recover) ------------------------------------------------------
    def recover(self, component_name: str, plan: str | None = None, wait: bool = True) -> int:
        """Open or reuse the component's incident and run ``plan`` (default: its own) now, as an
        operator's decision (guards that protect against automatic action do not apply)."""
        row, plan_name = self._manual_target(component_name, plan)
        with self.db.write() as session:
            existing = active_incident(session, row.id)
            if existing is not None:
                incident_id = existing.id
            else:
                event = open_incident(session, component_id=row.id, component_name=row.name, at=self.clock.now(),
                                      reason="manual recovery", flap_episode=self.health.flap_episode(row.id))
                assert event is not None, "none was active in this transaction"
                incident_id = event.incident_id
                # this opening is a person's decision, never a crash-loop cycle
                opened = session.get_one(Incident, incident_id)
                opened.details = {**(opened.details or {}), MANUAL_KEY: opened.reopen_count}
        claim = claims.claim(self.db, incident_id, self.owner, lease_s=self.lease_s, exclusive=self.exclusive)
        if claim is None:
            raise ConflictError(f"incident {incident_id} of {component_name!r} is already being recovered")
        self._start_loop()  # renews the lease while the run goes on
        future = self._submit(claim, manual=True, plan_name=plan_name)
        if wait and future is not None:
            future.result()
        return incident_id

    def dry_run(self, component_name: str, plan: str | None = None) -> list[str]:
        """What ``recover`` would run, rendered step by step; nothing is written or sent."""
        row, plan_name = self._manual_target(component_name, plan)
        assert self._plans is not None
        lines = []
        for index, step in enumerate(self._plans.plans[plan_name].steps):
            context = StrategyContext.create(component_view(row), incident_id=0, step_index=index,
                                             timeout_s=step.timeout_s, clock=self.clock, dry_run=True,
                                             probe=probe_now, send=send)
            described = runs.describe(step.make_strategy(), context)
            lines.append(f"step {index} ({step.label}): would {redact(described, secret_values(row))}")
        return lines

    def _manual_target(self, component_name: str, plan: str | None) -> tuple[Component, str]:
        if self._plans is None:
            raise InputError("no plan file found (give --plans or set ORCHESTRATOR_PLANS)", field="--plans")
        with self.db.read() as session:
            row = session.scalar(select(Component).where(Component.name == component_name))
        if row is None:
            raise NotFoundError(f"no component named {component_name!r}", field="NAME")
        plan_name = plan or row.plan
        if plan_name is None:
            raise InputError(f"component {component_name!r} has no plan; give one with --plan", field="--plan")
        self._plans.get(plan_name)  # NotFoundError lists the plans
        return row, plan_name

    # -- the loop ------------------------------------------------------------------------------------
    def _start_loop(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="recovery-loop", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the look: a wake during it is a reason to look again
            claimed = 0
            try:
                claimed = self.tick()
            except Exception as exc:  # the database may be away: said once per outage, tried again next tick
                self.db_watch.failed(exc)
            else:
                self.db_watch.ok()
            self._ticks += 1
            if not claimed:
                self._wake.wait(self.sleep_s())

    def sleep_s(self) -> float:
        """How long the loop may sleep unless woken: ``tick_s``, less when a wait this process wrote ends
        sooner, and at most a quarter lease while runs are in flight (their leases are renewed)."""
        wait = self.tick_s
        if self._active:
            wait = min(wait, self.lease_s / 4)
        mono = self.clock.monotonic()
        end = self._waits.next_end(mono)
        if end is not None:
            wait = min(wait, end - mono)
        return max(0.0, wait)

    def tick(self) -> int:
        """One pass of the loop; the number of incidents claimed."""
        self._renew()
        self._retry_releases()
        if not self._claiming:
            return 0
        self._sweep_orphans()
        limits = self.limits
        self.outage_open = outage.check(self.db, self.health, limits, self.clock, self.outage_open)
        self.slots.set_limit(self._slot_limit())
        now, mono = self.clock.now(), self.clock.monotonic()
        horizon = self._waits.horizon(now, mono)  # a wall clock stepped back does not hold a wait that ended
        waiting = self._waits.waiting(mono)  # one stepped forward does not end a wait early
        world = worklist.Circumstances(self.health, self.outage_open,
                                       frozenset(self._plans.plans) if self._plans else frozenset(),
                                       self.engine.error_handling_enabled, str(self.engine.degradation()))
        room = MAX_RUNS - len(self._active)
        found = worklist.inherited(self.db, self._inherited, owner=self.owner, exclusive=self.exclusive)
        if found or worklist.any_active(self.db):  # no active incident: nothing due, nothing blocked
            due = worklist.due(self.db, now=horizon, owner=self.owner, exclusive=self.exclusive,
                               limit=room + len(waiting))
            found += worklist.not_waiting(self.db, due, waiting)
            found += worklist.unblocked(self.db, now=horizon, owner=self.owner, exclusive=self.exclusive, world=world)
        self._waits.expire(mono)
        claimed = 0
        for candidate in found[:room]:
            if candidate.incident_id in self._active or candidate.incident_id in self._unreleased:
                continue
            claim = claims.claim(self.db, candidate.incident_id, self.owner, lease_s=self.lease_s,
                                 exclusive=self.exclusive)
            if claim is not None and self._submit(claim) is not None:
                claimed += 1
        self._last_claimed = claimed
        return claimed

    def _sweep_orphans(self) -> None:
        """Every ORPHAN_SWEEP_S: close active incidents whose component is gone (invariant 2)."""
        mono = self.clock.monotonic()
        if mono < self._orphans_at:
            return
        self._orphans_at = mono + ORPHAN_SWEEP_S
        with self.db.read() as session:
            if not any_orphaned(session):  # idle stays a read: the write below only when there is work
                return
        with self.db.write() as session:
            closed = close_orphaned(session, at=self.clock.now())
        for incident_id in closed:
            log.warning("incident=%s resolved 'removed': its component is gone", incident_id)

    def _retry_releases(self) -> None:
        for incident_id, (claim, end) in list(self._unreleased.items()):
            try:
                self._release(claim, end)
            except LeaseLost:
                pass  # taken over meanwhile: nothing of ours to give back
            except Exception:  # still away: next tick (or the lease expires and it is taken over)
                continue
            self._unreleased.pop(incident_id, None)

    def _renew(self) -> None:
        if not self._active or time.monotonic() - self._renewed_at < self.lease_s / 4:
            return
        with self._lock:
            held = dict(self._active)
        for incident_id in claims.renew(self.db, held, self.lease_s):
            with self._lock:
                still = self._active.get(incident_id) == held[incident_id]
            if still:  # not merely a run that ended (and gave its lease back) meanwhile
                log.warning("incident=%s run lease lost: another owner took it over", incident_id)
        self._renewed_at = time.monotonic()

    def _slot_limit(self) -> int:
        return default_limit(self.limits.max_concurrent_recoveries, sum(self.health.counts().values()))

    def _idle(self) -> bool:
        """No run in flight, and no incident due soon or being recovered by someone else."""
        if self._active or self._last_claimed:
            return False
        soon = self.clock.now() + timedelta(seconds=IDLE_HORIZON_S)
        due = Incident.status.in_([S.OPEN.value, S.AWAITING_APPROVAL.value]) & or_(
            Incident.next_attempt_at.is_(None), Incident.next_attempt_at <= soon)
        with self.db.read() as session:
            waiting = session.scalar(select(Incident.id).where(
                Incident.component_id.is_not(None), due | (Incident.status == S.RECOVERING.value)).limit(1))
        return waiting is None

    # -- one claimed run ---------------------------------------------------------------------------------
    def _submit(self, claim: claims.Claim, *, manual: bool = False, plan_name: str | None = None) -> Future[RunEnd] | None:
        with self._lock:
            if self._stop.is_set():
                return None
            self._active[claim.incident_id] = claim
            try:
                future = self._pool.submit(self._work, claim, manual, plan_name)
            except RuntimeError:  # shut down meanwhile
                self._active.pop(claim.incident_id, None)
                return None
            self._futures[claim.incident_id] = future
        return future

    def _work(self, claim: claims.Claim, manual: bool, plan_name: str | None) -> RunEnd:
        try:
            end = self._run_claimed(claim, manual, plan_name)
        except Exception as exc:  # a bug or a lost database must not take the pool (or the daemon) down
            log.exception("incident=%s recovery run failed", claim.incident_id)
            end = RunEnd(RunOutcome.FAILED, reason=f"{type(exc).__name__}: {first_line(exc) if str(exc).strip() else ''}")
        try:
            self._release(claim, end)
        except LeaseLost:
            log.warning("incident=%s run lease was taken over before the run ended", claim.incident_id)
        except Exception as exc:  # the database is away: give it back once it returns (or it expires)
            log.warning("incident=%s could not give back its run lease yet: %s", claim.incident_id,
                        first_line(exc))
            self._unreleased[claim.incident_id] = (claim, end)
        finally:
            with self._lock:
                self._active.pop(claim.incident_id, None)
                self._futures.pop(claim.incident_id, None)
            self.wake()  # its next attempt may be due at once, and there is room for another run
        return end

    def _run_claimed(self, claim: claims.Claim, manual: bool, plan_name: str | None) -> RunEnd:
        with self.db.read() as session:
            incident = session.get(Incident, claim.incident_id)
            row = session.get(Component, incident.component_id) if incident and incident.component_id else None
        if incident is None or row is None or incident.status == S.RESOLVED.value:
            return GONE
        plans, run = self._plans, runs.current(incident)
        name = plan_name or (run.plan if run is not None and not manual else None) or row.plan
        if plans is None or name is None or name not in plans.plans:
            reason = ("no plan file loaded" if plans is None else "the component has no recovery plan" if name is None
                      else f"plan {name!r} is not in {plans.source or 'the plan file'}")
            return blocked(self.engine, incident.id, guard="no_plan", reason=f"no plan: {reason}; observing only")
        inherited = incident.id in self._inherited
        self._inherited.discard(incident.id)
        takeover = inherited or claim.previous_owner not in (None, self.owner)
        # an incident found at start-up is looked at at once; its own schedule still holds before acting
        not_before = incident.next_attempt_at if inherited else None
        req = RunRequest(incident.id, name, plans.plans[name], plans.limits, claim, manual=manual,
                         takeover=takeover, settle_s=self.settle, not_before=not_before)
        return self.executor.run(req)

    def _release(self, claim: claims.Claim, end: RunEnd) -> None:
        """Give the lease back and say when to come back, in one transaction fenced on the lease;
        an incident left ``recovering`` goes back to ``open`` (nobody works on it now). The wait is
        also kept on the monotonic clock (``self._waits``): the wall time is only written down."""
        now, mono = self.clock.now(), self.clock.monotonic()
        with self.db.write() as session:
            incident = session.get(Incident, claim.incident_id)
            if incident is None:
                return
            details = dict(incident.details or {})
            failures = int(details.get("run_failures", 0)) + 1 if end.outcome is RunOutcome.FAILED else 0
            retry_at = end.retry_at
            if end.outcome is RunOutcome.FAILED:
                retry_at = now + timedelta(seconds=run_error_delay_s(failures, self.engine.rng))
            elif end.outcome is RunOutcome.BLOCKED:
                retry_at = _earliest(end.retry_at, now + timedelta(seconds=worklist.BLOCKED_RECHECK_S))
            values = {"next_attempt_at": retry_at, "details": {**details, "run_failures": failures},
                      **waiting(end, retry_at, blocked_for=_guard_wait(incident))}
            if end.outcome is RunOutcome.FAILED:
                values["last_error"] = end.reason
            if not claims.release(session, claim, **values):
                raise LeaseLost(f"incident {claim.incident_id}: lease epoch {claim.epoch} was taken over")
            if incident.status == S.RECOVERING.value:
                status.transition(session, incident.id, S.RECOVERING, S.OPEN, now=now,
                                  reason=end.reason or f"run ended ({end.outcome.value}); waiting for the next one")
        self._waits.set(claim.incident_id, retry_at, now=now, mono=mono)


def _earliest(*times: datetime | None) -> datetime | None:
    return min((t for t in times if t is not None), default=None)


def _guard_wait(incident: Incident) -> str | None:
    """A blocked incident's ``waiting_for`` (``guard <name>: …``), None when it is not blocked."""
    if incident.status != S.BLOCKED.value or not (incident.waiting_for or "").startswith("guard "):
        return None
    return incident.waiting_for


def waiting(end: RunEnd, retry_at: datetime | None, *, blocked_for: str | None = None) -> dict[str, object]:
    """``incidents.waiting_for`` / ``waiting_until`` after a run ended without closing the incident:
    what it waits for, and when the loop looks at it again at the latest (invariant 6: a waiting
    incident always says why and until when). Cleared when it resolved or escalated (a person has it).
    ``blocked_for``: the guard a still-blocked incident names; a run that only waited (woken before its
    next attempt, a settle window) leaves it blocked, so it keeps naming that guard (invariant 2)."""
    if end.outcome in (RunOutcome.RESOLVED, RunOutcome.ESCALATED):
        return {"waiting_for": None, "waiting_until": None}
    if end.outcome is RunOutcome.WAITING and blocked_for:
        return {"waiting_for": blocked_for, "waiting_until": retry_at}
    if end.outcome is RunOutcome.BLOCKED:
        why = f"guard {end.reason}" if end.reason else "a guard"
    elif end.outcome is RunOutcome.FAILED:
        why = f"a retry after the run failed ({end.reason})" if end.reason else "a retry after the run failed"
    elif end.outcome is RunOutcome.STOPPED:
        why = "the next daemon: stopped while working on it"
    elif end.outcome is RunOutcome.GONE:
        why = "the recovery loop: the run ended early (resolved, moved or taken over meanwhile)"
    else:
        why = end.reason or "the next attempt"
    return {"waiting_for": why, "waiting_until": retry_at}
