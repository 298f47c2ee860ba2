"""The plan executor: runs one claimed plan for one incident, step by step, attempt by attempt.

Each attempt: read a :class:`~orchestrator.recovery.gates.Turn` → pre-step gates → claim (journal row
committed first, run lease fenced) → execute holding an action slot → persist declared facts →
verify → journal. Verified → the incident is resolved ``auto`` by that step. Not verified → the
retry policy says when the next attempt may run (the claim ends and the loop comes back then), then
the next step. Plan exhausted → escalated, the breaker counts a failure, a human is told.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from orchestrator.components.targets import effective_check
from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.clock import Clock
from orchestrator.core.errors import ClaimRefused, LeaseLost, first_line
from orchestrator.core.states import AttemptStatus, ComponentState, IncidentStatus, Resolution
from orchestrator.db.models import Component, Incident
from orchestrator.health.checkers import probe_now
from orchestrator.incidents.notify_send import send
from orchestrator.plans import Step
from orchestrator.plugins.contract import Strategy, StrategyContext
from orchestrator.recovery import attempt as attempts
from orchestrator.recovery import claims, journal, records, runs
from orchestrator.recovery.decisions import blocked, escalated, resolved, step_failed
from orchestrator.recovery.gates import StepExit, Turn, before_attempt
from orchestrator.recovery.guards import ACT, evaluate, mass_outage
from orchestrator.recovery.health_view import HealthView
from orchestrator.recovery.retry import RetryPolicy
from orchestrator.recovery.snapshot import guard_input, hold_of
from orchestrator.recovery.takeover import take_over
from orchestrator.recovery.targets import component_view
from orchestrator.recovery.verify import pause
from orchestrator.recovery.work import GONE, STOPPED, Engine, RunEnd, RunOutcome, RunRequest

log = logging.getLogger("orchestrator.recovery")
OBSERVED_REASON = "observe only (ERROR_HANDLING_ENABLED=false): the journal shows what would have run"


class PlanExecutor:
    """Runs claimed plans; shared by the coordinator's workers (holds no per-run state)."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine

    def run(self, req: RunRequest) -> RunEnd:
        """1. Settle what a dead owner left running; look before acting on an incident taken over.
        2. Start or resume the incident's run.  3. Each step not yet done: gates, then attempts.
        4. Plan exhausted → escalate (observe-only: blocked, the journal saying what would have run)."""
        begun = self._begin(req)
        if isinstance(begun, RunEnd):
            return begun
        req = dataclasses.replace(req, manual=begun.manual)
        observed = False
        for index, step in enumerate(req.plan.steps):
            ended = self._step(req, index, step)
            if isinstance(ended, RunEnd):
                return ended
            observed |= ended is StepExit.OBSERVED
        if observed:
            return blocked(self.e, req.incident_id, guard="observe_only", reason=OBSERVED_REASON)
        return escalated(self.e, req, None, f"plan {req.plan_name!r} exhausted without a verified recovery")

    # -- the parts, in the order they run ---------------------------------------------------------
    def _begin(self, req: RunRequest) -> runs.Run | RunEnd:
        with self.e.db.write() as session:
            incident = session.get(Incident, req.incident_id)
            row = runs.component_of(session, req.incident_id)
            if incident is None or row is None or incident.status == IncidentStatus.RESOLVED.value:
                return GONE
            orphans = journal.running_rows(session, incident.id)
            run = runs.start(session, incident, req.plan_name, manual=req.manual, now=self.e.clock.now())
            verified = runs.verified_in_run(journal.rows_for(session, incident.id), run)
            released = _block_ended(incident, row, self.e.clock.now())
        looked = orphans or verified is not None or released is not None or (req.takeover and not run.manual)
        if looked:
            end = take_over(self.e, req, row, orphans, fresh=not run.manual, verified=verified, why=released)
            if end is not None:
                return end
        if req.not_before is not None and not self.e.passed(req.incident_id, req.not_before):
            why = ("checked fresh; " if looked else "") + "waiting for its next attempt"
            return RunEnd(RunOutcome.WAITING, req.not_before, why)
        return run

    def _step(self, req: RunRequest, index: int, step: Step) -> RunEnd | StepExit:
        strategy = step.make_strategy()
        while not self.e.stop.is_set():
            turn = self._turn(req, index, step, strategy)
            if turn is None:
                return GONE
            if turn.pos.done:
                return StepExit.DONE
            decision = before_attempt(self.e, req, turn)
            if decision is not None:
                return decision
            end = self._attempt(req, turn)
            if end is not None:
                return end
        return STOPPED

    def _turn(self, req: RunRequest, index: int, step: Step, strategy: Strategy) -> Turn | None:
        """Everything the attempt decides on, read once."""
        now, level = self.e.clock.now(), str(self.e.degradation())
        with self.e.db.read() as session:
            incident = session.get(Incident, req.incident_id)
            row = runs.component_of(session, req.incident_id)
            run = runs.current(incident) if incident is not None else None
            if incident is None or row is None or run is None or incident.status == IncidentStatus.RESOLVED.value:
                return None
            pos = runs.position(journal.rows_for(session, incident.id), index, step, run.base, strategy)
            decision = ACT if pos.done else evaluate(guard_input(
                session, row=row, incident=incident, plan=req.plan, limits=req.limits, health=self.e.health,
                now=now, manual=req.manual, error_handling_enabled=self.e.error_handling_enabled,
                breaker_trial_held=run.trial_held, strategy=step.strategy, degradation=level))
        context = self._context(row, req, index, pos.attempt, step)
        return Turn(incident, row, run, pos, index, step, strategy, decision, runs.describe(strategy, context), level)

    def _context(self, row: Component, req: RunRequest, index: int, attempt: int, step: Step,
                 entry_id: int | None = None) -> StrategyContext:
        on_spawn = None if entry_id is None else (lambda pid: self._spawned(entry_id, pid))
        probe = pinged_probe(self.e.health, row.id, self.e.clock) if row.check_kind == "push" else None
        return StrategyContext.create(component_view(row), incident_id=req.incident_id, step_index=index,
                                      attempt=attempt, timeout_s=step.timeout_s, clock=self.e.clock,
                                      on_spawn=on_spawn, exit_dir=None if entry_id is None else str(journal.exit_dir()),
                                      probe=probe or probe_now, send=send)

    def _attempt(self, req: RunRequest, t: Turn) -> RunEnd | None:
        """Claim, act holding a slot (only while the action runs), verify, journal, decide."""
        if not self.e.slots.acquire(self.e.stop):
            return STOPPED
        try:
            if not req.manual and self._fleet_tripped(req):
                return None  # many failed while this waited for a slot: the guards decide on the next turn
            flapping = self.e.health.state(t.row.id) is ComponentState.FLAPPING
            entry_id = self._claim(req, t, flapping)
            if entry_id is None:
                return GONE
            log.info("%s claimed: %s", t.tag, t.description)
            context = self._context(t.row, req, t.index, t.pos.attempt, t.step, entry_id)
            result = attempts.execute(t.strategy, context, t.step)
            # flapping by the time the action ended: before it could change anything (a FLAPPING verdict
            # that comes later may be the action's own work: its recovery is one more state change)
            flapping = flapping or self.e.health.state(t.row.id) is ComponentState.FLAPPING
        finally:
            self.e.slots.release()
        return self._after(req, t, entry_id, self._verify(req, t, context, entry_id, result), flapping)

    def _fleet_tripped(self, req: RunRequest) -> bool:
        counts = self.e.health.counts()
        return mass_outage(counts.get(ComponentState.DOWN, 0), sum(counts.values()),
                           req.limits.max_unhealthy_fraction, req.limits.min_components, req.limits.min_down)

    def _claim(self, req: RunRequest, t: Turn, flapping: bool) -> int | None:
        now = self.e.clock.now()
        # a manual action is a person's decision: it does not use up the flap episode's one automatic action
        flapping = flapping and not req.manual
        episode = self.e.health.flap_episode(t.row.id) if flapping else None

        def fenced(session: Session) -> None:
            try:
                claims.fence(session, self.e.db, req.claim, self.e.lease_s)
            except LeaseLost as exc:
                raise ClaimRefused(str(exc)) from None
            if not runs.mark_recovering(session, req.incident_id, now, episode):
                raise ClaimRefused("the incident is no longer active")

        entry_id = journal.claim(self.e.db, incident_id=req.incident_id, component_id=t.row.id,
                                 step_index=t.index, attempt=t.pos.attempt, strategy=t.step.strategy,
                                 owner=self.e.owner, now=now, description=t.description, owner_epoch=req.claim.epoch,
                                 also=fenced)
        if entry_id is not None:
            self.e.claimed.add(entry_id)
        return entry_id

    def _spawned(self, entry_id: int, pid: int) -> None:
        try:
            journal.record_process(self.e.db, entry_id, pid)
        except Exception as exc:  # the command runs on; only a later owner's kill of it is lost
            log.warning("could not record pid %s of journal row %s: %s", pid, entry_id, first_line(exc))

    def _verify(self, req: RunRequest, t: Turn, context: StrategyContext, entry_id: int,
                result: attempts.AttemptResult) -> attempts.AttemptResult:
        if result.status is not AttemptStatus.SUCCEEDED:
            return result
        if result.facts and t.strategy.persists:
            with self.e.db.write() as session:
                changed = records.apply_facts(session, t.row.id, t.strategy.persists, result.facts, self.e.clock.now())
            if changed:
                log.info("%s persisted %s", t.tag, ", ".join(changed))
        journal.record_action(self.e.db, entry_id, detail=result.detail, output=result.output, facts=result.facts)
        if self._check_of(t.row.id) is None:
            return attempts.AttemptResult(AttemptStatus.FAILED, f"{result.detail}; not verified: the component was "
                                          "removed mid-step", result.output, result.facts, permanent=True)
        required = max(t.step.verify.successes, t.row.success_threshold)
        checked = attempts.verify(t.strategy, context, t.step, lambda: self._check_of(t.row.id) or effective_check(t.row),
                                  t.row.timeout_s, self.e.stop, required)
        if checked is None:
            result.verification = {"mode": "none", "passed": False, "reason": "this strategy is never verified"}
            return result
        checked.detail = f"{result.detail}; {checked.detail}"
        checked.output, checked.facts = result.output, result.facts
        return checked

    def _check_of(self, component_id: int) -> CheckSpec | None:
        """The component's effective check now; None once it was removed."""
        with self.e.db.read() as session:
            row = session.get(Component, component_id)
            return effective_check(row) if row is not None else None

    def _after(self, req: RunRequest, t: Turn, entry_id: int, result: attempts.AttemptResult,
               flapping: bool = False) -> RunEnd | None:
        """Journal the attempt; resolved when verified, else when (and whether) to try again. A
        component flapping when the attempt was claimed, or by the time its action ended (``flapping``),
        heals in its good phases by itself: passing checks then are no proof the action worked, so it is
        resolved ``self``. Not one that turns FLAPPING while it verifies: the recovery the action caused
        is itself a state change of the flap window, so that verdict may be the action's work (I5: the
        record tells what happened)."""
        if result.interrupted:
            log.warning("%s shutdown during verification: left running for the next owner", t.tag)
            return STOPPED
        if not journal.finish(self.e.db, entry_id, status=result.status, now=self.e.clock.now(), detail=result.detail,
                              output=result.output, facts=result.facts,
                              verification={**result.verification, "permanent": result.permanent}):
            log.warning("%s %s, but the attempt was settled meanwhile (its component removed, or its run taken "
                        "over): that record stands", t.tag, result.status.value)
            return GONE
        log.info("%s %s: %s", t.tag, result.status.value, result.detail)
        self.e.report(f"step {t.index} ({t.step.label}) attempt {t.pos.attempt}: {result.status.value} — {result.detail}")
        if result.verified and flapping:
            return resolved(self.e, req, t.row.id, step_index=None, resolution=Resolution.SELF,
                            reason=f"healthy after step {t.index} ({t.step.label}) attempt {t.pos.attempt}, but it "
                                   "was flapping: a good phase of the flap, not proof that the action worked",
                            results=result.results)
        if result.verified:
            return resolved(self.e, req, t.row.id, step_index=t.index, resolution=Resolution.AUTO,
                            reason=f"verified after step {t.index} ({t.step.label}) attempt {t.pos.attempt}",
                            results=result.results)
        if result.status is AttemptStatus.SUCCEEDED or result.permanent:
            return None  # never verified (e.g. notify), or retrying cannot help: the next step
        step_failed(self.e, req, t.tag, result.detail)
        delay_s = RetryPolicy(t.step, self.e.rng).next_delay_s(t.pos.executed_in_run + 1)
        if delay_s is None:
            return None
        log.info("%s backing off %.2fs", t.tag, delay_s)
        if req.manual:  # an operator is watching: wait here
            return None if pause(delay_s, clock=self.e.clock, stop=self.e.stop) else STOPPED
        retry_at = self.e.clock.now() + timedelta(seconds=delay_s)
        return RunEnd(RunOutcome.WAITING, retry_at, f"attempt {t.pos.attempt + 1} of step {t.index} "
                                                    f"after {delay_s:.2f}s backoff")


def pinged_probe(health: HealthView, component_id: int, clock: Clock) -> Callable[[object, float], CheckResult]:
    """A push monitor's "probe" after an action (a step that re-ran the job): nothing can be asked, so it
    passes once the job's success ping made the monitor UP in the health view (orchestrator.health.push)."""
    from orchestrator.health.checkers.push import NOT_PROBED

    def probe(_check: object, _timeout_s: float) -> CheckResult:
        if health.state(component_id) is ComponentState.UP:
            return CheckResult(True, 0.0, clock.now())
        return CheckResult(False, 0.0, clock.now(), error=NOT_PROBED)

    return probe


#: Guards whose block says nothing about the component's own health: when the run comes back from one,
#: the component may have been fixed meanwhile while the health view still says DOWN (a DOWN component
#: is probed only every min(30 s, 5 × interval)), so it is looked at fresh before anything acts. Not
#: ``flapping``: a fresh check in a flap's good phase would close what that guard holds.
LOOK_AFTER_BLOCK = frozenset({"hold", "sentinels", "blast_radius", "degradation", "dependency", "observe_only"})


def _block_ended(incident: Incident, row: Component, now: datetime) -> str | None:
    """Why to look fresh before acting when the incident comes back from a guard's block (an operator's
    hold that ended, a mass outage, a dependency, a freeze): the component may have been fixed
    meanwhile. None otherwise. Must never break invariant 5 (no action on a component healthy when
    its attempt was picked up): the view of a DOWN component is as old as its probe backoff."""
    details = incident.details or {}
    guard = details.get("guard")
    if incident.status != IncidentStatus.BLOCKED.value or guard not in LOOK_AFTER_BLOCK:
        return None
    if guard == "hold":
        return None if hold_of(row, now) else \
            f"healthy when its hold ended ({incident.status_reason or 'held'}): no action needed"
    return f"healthy when looked at again after guard {guard} ({incident.status_reason or 'blocked'}): no action needed"
