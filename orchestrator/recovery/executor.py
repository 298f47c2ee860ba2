"""The plan executor: runs one plan for one incident, step by step, attempt by attempt.

For every attempt (see :meth:`PlanExecutor.run`): guards → approval → claim (committed before the
action) → execute under the step deadline → persist facts → verify → journal. Verified → the incident
is resolved ``auto`` by that step. Not verified → next attempt after full-jitter backoff, then the
next step. Plan exhausted → escalated, the breaker counts a failure, a human is told.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.core.clock import Clock
from orchestrator.core.states import AttemptStatus, ComponentState, IncidentStatus, Resolution
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, Incident
from orchestrator.incidents.lifecycle import IncidentEvent
from orchestrator.plans import Limits, Plan
from orchestrator.plugins.contract import StrategyContext
from orchestrator.recovery import attempt as attempts
from orchestrator.recovery import journal, records, runs
from orchestrator.recovery.approval import ApprovalOutcome, await_approval
from orchestrator.recovery.guards import Verdict, evaluate
from orchestrator.recovery.health_view import HealthView
from orchestrator.recovery.snapshot import guard_input
from orchestrator.recovery.targets import component_view, effective_check
from orchestrator.recovery.verify import check_probe, verify_until
from orchestrator.resilience.backoff import full_jitter_delay
from orchestrator.resilience.breaker import BreakerState

log = logging.getLogger("orchestrator.recovery")


class RunOutcome(StrEnum):
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    BLOCKED = "blocked"
    OBSERVED = "observed"  # dry-run or observe-only: the journal says what would have run
    GONE = "gone"  # resolved or changed by someone else meanwhile; or already claimed elsewhere
    STOPPED = "stopped"  # shutdown


@dataclass(frozen=True)
class RunRequest:
    incident_id: int
    plan_name: str
    plan: Plan
    limits: Limits
    manual: bool = False
    dry_run: bool = False
    resume: bool = False  # continue the incident's current run (after a restart or an unblock)


class PlanExecutor:
    """Runs plans; shared by the coordinator's workers (holds no per-run state)."""

    def __init__(self, db: Database, *, health: HealthView, clock: Clock, owner: str, rng: random.Random,
                 error_handling_enabled: bool, stop: threading.Event, emit: Callable[[IncidentEvent], None],
                 report: Callable[[str], None] | None = None, approval_poll_s: float = 1.0) -> None:
        self.db, self.health, self.clock, self.owner, self.rng = db, health, clock, owner, rng
        self.error_handling_enabled = error_handling_enabled
        self.stop, self.emit, self.report = stop, emit, report or (lambda _line: None)
        self.approval_poll_s = approval_poll_s

    def run(self, req: RunRequest) -> RunOutcome:
        """1. Start (or resume) the incident's run.  2. For each step not yet done, for each attempt:
        guards, approval, claim, execute, verify, journal.  3. Exhausted → escalate."""
        run_no, base = runs.start(self.db, req.incident_id, req.plan_name, resume=req.resume, now=self.clock.now())
        if run_no is None:
            return RunOutcome.GONE
        trial_held = False
        with self.db.read() as session:
            row = runs.component_of(session, req.incident_id)
            if row is not None and req.resume:
                trial_held = runs.breaker_state(row, req.limits) is BreakerState.HALF_OPEN
        for index, step in enumerate(req.plan.steps):
            strategy = step.make_strategy()
            while True:
                if self.stop.is_set():
                    return RunOutcome.STOPPED
                with self.db.read() as session:
                    incident = session.get(Incident, req.incident_id)
                    row = runs.component_of(session, req.incident_id)
                    if incident is None or row is None or incident.status == IncidentStatus.RESOLVED.value:
                        return RunOutcome.GONE
                    pos = runs.position(journal.rows_for(session, incident.id), index, step, base, strategy)
                    if pos.busy:
                        return RunOutcome.GONE
                    if pos.done:
                        break
                    decision = evaluate(guard_input(
                        session, row=row, incident=incident, plan=req.plan, limits=req.limits, health=self.health,
                        now=self.clock.now(), manual=req.manual, error_handling_enabled=self.error_handling_enabled,
                        breaker_trial_held=trial_held))
                    view, cid, name, timeout_s = component_view(row), row.id, row.name, row.timeout_s
                tag = f"component={name} incident={req.incident_id} step={index} attempt={pos.attempt}"
                ctx = StrategyContext.create(view, incident_id=req.incident_id, step_index=index, attempt=pos.attempt,
                                             timeout_s=step.timeout_s, clock=self.clock,
                                             dry_run=req.dry_run or decision.verdict is Verdict.OBSERVE)
                description = runs.describe(strategy, ctx)
                common = dict(incident_id=req.incident_id, component_id=cid, step_index=index, attempt=pos.attempt,
                              strategy=step.strategy, owner=self.owner, now=self.clock.now(), description=description)
                if decision.verdict is Verdict.SKIP:
                    journal.record_not_executed(self.db, **common, reason=decision.reason)
                    log.warning("%s skipped by guard %s: %s", tag, decision.guard, decision.reason)
                    self.report(f"step {index} attempt {pos.attempt}: skipped ({decision.reason})")
                    return self._stop_by_guard(req, decision)
                if req.dry_run or decision.verdict is Verdict.OBSERVE:
                    reason = "dry run" if req.dry_run else decision.reason
                    journal.record_not_executed(self.db, **common, reason=reason)
                    log.info("%s not executed (%s): would %s", tag, reason, description)
                    self.report(f"step {index} ({step.label}): would {description}")
                    break
                if not req.manual and self.health.state(cid) is ComponentState.UP:
                    outcome = self._healed_meanwhile(req, pos, step, timeout_s)
                    if outcome is not None:
                        return outcome
                if step.approval.required:
                    answer = await_approval(self.db, req.incident_id, f"{run_no}:{index}", step.approval,
                                            clock=self.clock, stop=self.stop, emit=self.emit,
                                            poll_s=self.approval_poll_s)
                    self.report(f"step {index} approval: {answer.value}")
                    if answer is ApprovalOutcome.ESCALATE:
                        return self._exhausted(req, cid, f"approval for step {index} ({step.label}) timed out")
                    if answer in (ApprovalOutcome.GONE, ApprovalOutcome.STOPPED):
                        return RunOutcome.GONE if answer is ApprovalOutcome.GONE else RunOutcome.STOPPED
                if not req.manual and not trial_held and runs.breaker_state(row, req.limits) is BreakerState.OPEN:
                    records.record_breaker(self.db, cid, req.limits, succeeded=False, now=self.clock.now(),
                                           take_trial=True)
                    trial_held = True
                episode = self.health.flap_episode(cid) if self.health.state(cid) is ComponentState.FLAPPING else None
                entry_id = journal.claim(self.db, **common, also=functools.partial(
                    runs.mark_recovering, incident_id=req.incident_id, now=common["now"], flap_episode=episode))
                if entry_id is None:
                    return RunOutcome.GONE
                log.info("%s claimed: %s", tag, description)
                result = self._attempt(ctx, strategy, step, cid, timeout_s)
                if result.interrupted:
                    log.warning("%s shutdown during verification: left running for reconciliation", tag)
                    return RunOutcome.STOPPED
                journal.finish(self.db, entry_id, status=result.status, now=self.clock.now(), detail=result.detail,
                               output=result.output, facts=result.facts,
                               verification={**result.verification, "permanent": result.permanent})
                log.info("%s %s: %s", tag, result.status.value, result.detail)
                self.report(f"step {index} ({step.label}) attempt {pos.attempt}: {result.status.value} — {result.detail}")
                if result.verified:
                    return self._resolved(req, cid, index, Resolution.AUTO)
                if result.status is AttemptStatus.SUCCEEDED or result.permanent:
                    break  # never verified (e.g. notify), or retrying cannot help: next step
                self._emit_step_failed(req, tag, result.detail)
                if pos.executed_in_run + 1 < step.attempts:
                    delay = full_jitter_delay(pos.executed_in_run + 1, step.backoff.base_s, step.backoff.cap_s, self.rng)
                    log.info("%s backing off %.2fs", tag, delay)
                    self.stop.wait(delay)
        if req.dry_run or not self.error_handling_enabled:
            return RunOutcome.OBSERVED
        return self._exhausted(req, None, f"plan {req.plan_name!r} exhausted without a verified recovery")

    # -- pieces -------------------------------------------------------------------------------------
    def _attempt(self, ctx: StrategyContext, strategy, step, component_id: int,
                 timeout_s: float) -> attempts.AttemptResult:
        result = attempts.execute(strategy, ctx, step)
        if result.status is not AttemptStatus.SUCCEEDED:
            return result
        if result.facts:
            with self.db.write() as session:
                changed = records.apply_facts(session, component_id, result.facts, self.clock.now())
            if changed:
                log.info("component=%s incident=%s step=%s persisted %s", ctx.component.name, ctx.incident_id,
                         ctx.step_index, ", ".join(changed))
        checked = attempts.verify(strategy, ctx, step, lambda: self._check_of(component_id), timeout_s, self.stop)
        if checked is None:
            result.verification = {"mode": "none", "passed": False, "reason": "this strategy is never verified"}
            return result
        checked.detail = f"{result.detail}; {checked.detail}"
        checked.output, checked.facts = result.output, result.facts
        return checked

    def _check_of(self, component_id: int):
        with self.db.read() as session:
            return effective_check(session.get(Component, component_id))

    def _healed_meanwhile(self, req: RunRequest, pos: runs.Position, step, timeout_s: float) -> RunOutcome | None:
        """The component looks UP before an automatic action: verify instead of acting. Passed → resolved
        ``auto`` by the last step that acted, or ``self`` when nothing acted; None → act after all."""
        with self.db.read() as session:
            row = runs.component_of(session, req.incident_id)
            spec = effective_check(row)
        outcome = verify_until(check_probe(spec), step.verify, mode="check", stop=self.stop, probe_timeout_s=timeout_s)
        if not outcome.passed:
            return None
        if pos.last_executed_step is None:
            return self._resolved(req, row.id, None, Resolution.SELF)
        return self._resolved(req, row.id, pos.last_executed_step, Resolution.AUTO)

    def _resolved(self, req: RunRequest, component_id: int, step_index: int | None,
                  resolution: Resolution) -> RunOutcome:
        now = self.clock.now()
        event = records.resolve_verified(self.db, req.incident_id, step_index=step_index, now=now,
                                         resolution=resolution)
        if resolution is Resolution.AUTO:  # a recovery with no action proves nothing about the breaker
            records.record_breaker(self.db, component_id, req.limits, succeeded=True, now=now)
        if event is not None:
            log.info("component=%s incident=%s step=%s resolved %s", event.component_name, req.incident_id,
                     step_index, resolution.value)
            self.report(f"incident {req.incident_id} resolved ({resolution.value}) by step {step_index}")
            self.emit(event)
        return RunOutcome.RESOLVED

    def _exhausted(self, req: RunRequest, component_id: int | None, reason: str) -> RunOutcome:
        now = self.clock.now()
        event = records.escalate(self.db, req.incident_id, reason, now)
        if event is None:
            return RunOutcome.GONE
        cid = component_id if component_id is not None else event.component_id
        if cid is not None:
            records.record_breaker(self.db, cid, req.limits, succeeded=False, now=now)
        log.warning("component=%s incident=%s escalated: %s", event.component_name, req.incident_id, reason)
        self.report(f"incident {req.incident_id} escalated: {reason}")
        self.emit(event)
        return RunOutcome.ESCALATED

    def _stop_by_guard(self, req: RunRequest, decision) -> RunOutcome:
        now = self.clock.now()
        if decision.escalates:
            event = records.escalate(self.db, req.incident_id, decision.reason, now)
            outcome = RunOutcome.ESCALATED
        else:
            event = records.block(self.db, req.incident_id, reason=decision.reason, guard=decision.guard,
                                  blocked_by=decision.blocked_by, now=now)
            outcome = RunOutcome.BLOCKED
        if event is not None:
            self.emit(event)
        return outcome

    def _emit_step_failed(self, req: RunRequest, tag: str, detail: str) -> None:
        with self.db.read() as session:
            incident = session.get(Incident, req.incident_id)
            self.emit(IncidentEvent("step_failed", req.incident_id, incident.component_id, incident.component_name,
                                    self.clock.now(), f"{tag}: {detail}"))
