"""Pre-step gates: what must be true before an attempt acts. Each returns a decision or None (go on).

In order (:data:`GATES`), the first that decides wins:

1. ``settle`` — before an automatic run's first action: act now if the failure is the component's own,
   else come back after ``limits.settle`` (bounded), so failures that belong together are judged together.
2. ``crash_loop`` — a component failing again soon after verified recoveries waits a growing delay.
3. ``guards`` — sentinels, blast radius, holds, dependency, flapping, breaker, budget, observe-only
   (:mod:`orchestrator.recovery.guards`).
4. ``healed_meanwhile`` — the component looks UP again, or the run comes back from a wait (the view
   of a DOWN component may be stale): check it for real and resolve ``self`` if healthy, no action.
5. ``approval`` — a step that needs a human's yes waits for it (durably, see approval.py).
6. ``breaker_trial`` — after the breaker's open period this run takes its half-open trial.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from orchestrator.components.targets import effective_check
from orchestrator.core.states import ComponentState, IncidentStatus, Resolution
from orchestrator.db.models import Component, Incident
from orchestrator.plans import Step
from orchestrator.plugins.contract import Strategy
from orchestrator.recovery import approval, journal, records, runs
from orchestrator.recovery.decisions import escalated, resolved, stopped_by_guard
from orchestrator.recovery.fleet_probe import FleetProbe, probe_fleet
from orchestrator.recovery.guards import Decision, Verdict, mass_outage
from orchestrator.recovery.retry import crash_loop_delay_s, crash_loop_streak
from orchestrator.recovery.snapshot import past_incidents
from orchestrator.recovery.verify import check_probe, confirm_healthy
from orchestrator.recovery.work import GONE, Engine, RunEnd, RunOutcome, RunRequest
from orchestrator.resilience.breaker import BreakerState

log = logging.getLogger("orchestrator.recovery")
#: settle windows waited at most while the fleet looks widely broken but the guard has not tripped yet
MAX_SETTLE_ROUNDS = 3
_probe_rng = random.Random()


class StepExit(StrEnum):
    """A step ends without ending the run."""

    DONE = "done"
    OBSERVED = "observed"  # observe-only: the journal says what would have run


@dataclass
class Turn:
    """Everything one attempt decides on, read once at the top of the attempt."""

    incident: Incident
    row: Component
    run: runs.Run
    pos: runs.Position
    index: int
    step: Step
    strategy: Strategy
    decision: Decision
    description: str
    #: the degradation level ``decision`` was made at (a block records it, not a later reading)
    level: str = "normal"

    @property
    def tag(self) -> str:
        return (f"component={self.row.name} incident={self.incident.id} step={self.index} "
                f"attempt={self.pos.attempt}")


Gate = Callable[[Engine, RunRequest, Turn], "RunEnd | StepExit | None"]


def settle(engine: Engine, req: RunRequest, t: Turn) -> RunEnd | None:
    """Before an automatic run's first action: go at once if the component's dependencies answer and a
    sample of the fleet is healthy; else come back after the settle window, again while the sample
    still fails widely and the blast-radius guard has not tripped (at most MAX_SETTLE_ROUNDS windows).

    Must never break invariant 6: bounded (MAX_SETTLE_ROUNDS windows of at most 5 min), and said in the
    incident's ``waiting_for``."""
    if req.manual or t.run.settled or t.pos.executed_in_incident or req.settle_s <= 0:
        return None
    rounds = t.run.settle_rounds
    probe = _probe(engine, req, t.row.id)
    done = (probe is not None and probe.isolated) or rounds >= MAX_SETTLE_ROUNDS or (
        rounds > 0 and (probe is None or not probe.widespread or _outage_tripped(engine, req)))
    if done and rounds == 0:
        return None  # acting now: nothing to remember (once it acted, settling is over anyway)
    t.run = dataclasses.replace(t.run, **({"settled": True} if done else {"settle_rounds": rounds + 1}))
    with engine.db.write() as session:
        runs.save(session, session.get_one(Incident, t.incident.id), t.run)
    if done:
        return None
    return RunEnd(RunOutcome.WAITING, engine.clock.now() + timedelta(seconds=req.settle_s),
                  f"settling for {req.settle_s:g}s before acting")


def _probe(engine: Engine, req: RunRequest, component_id: int) -> FleetProbe | None:
    try:
        return probe_fleet(engine.db, component_id, _probe_rng, engine.fleet)
    except Exception:  # an inconclusive look around is no reason to hurry: settle once
        log.exception("incident=%s fleet probe failed; settling", req.incident_id)
        return None


def _outage_tripped(engine: Engine, req: RunRequest) -> bool:
    counts = engine.health.counts()
    return mass_outage(counts.get(ComponentState.DOWN, 0), sum(counts.values()), req.limits.max_unhealthy_fraction,
                       req.limits.min_components, req.limits.min_down)


def crash_loop(engine: Engine, req: RunRequest, t: Turn) -> RunEnd | None:
    """A component failing again soon after verified recoveries waits ``limits.crash_loop`` before the
    incident's first action (10 s, doubling, at most 5 min by default).

    Must never break invariant 6: the wait is bounded (``cap``), the incident says why and until when
    (``waiting_for``/``waiting_until``), and a loop that keeps cycling goes to the flapping guard, which
    ends in a person. Incidents an operator opened (``orchestrator recover``) are no part of the streak."""
    if req.manual or t.pos.executed_in_incident:
        return None
    config = req.limits.crash_loop
    with engine.db.read() as session:
        history = past_incidents(session, t.incident)
    failed_at = t.incident.opened_at
    delay_s = crash_loop_delay_s(failed_at, history, config)
    not_before = failed_at + timedelta(seconds=delay_s)
    if delay_s <= 0 or engine.passed(t.incident.id, not_before):
        return None
    streak = crash_loop_streak(failed_at, history, config)
    return RunEnd(RunOutcome.WAITING, not_before, f"crash loop: failed again soon after {streak} verified "
                                                 f"recoveries; waiting {delay_s:g}s before acting")


def guards(engine: Engine, req: RunRequest, t: Turn) -> RunEnd | StepExit | None:
    """The guards' verdict: SKIP blocks or escalates (journaled once per block), OBSERVE journals what
    would have run and moves to the next step."""
    decision = t.decision
    if decision.verdict is Verdict.ACT:
        return None
    not_executed = functools.partial(
        journal.record_not_executed, engine.db, incident_id=t.incident.id, component_id=t.row.id, step_index=t.index,
        attempt=t.pos.attempt, strategy=t.step.strategy, owner=engine.owner, now=engine.clock.now(),
        description=t.description)
    if decision.verdict is Verdict.OBSERVE:
        not_executed(reason=decision.reason)
        log.info("%s not executed (%s): would %s", t.tag, decision.reason, t.description)
        engine.report(f"step {t.index} ({t.step.label}): would {t.description}")
        return StepExit.OBSERVED
    if not _same_block(t.incident, decision):
        not_executed(reason=decision.reason)
        log.warning("%s skipped by guard %s: %s", t.tag, decision.guard, decision.reason)
        engine.report(f"step {t.index} attempt {t.pos.attempt}: skipped ({decision.reason})")
    return stopped_by_guard(engine, req, decision, level=t.level)


def _same_block(incident: Incident, decision: Decision) -> bool:
    """Already blocked by this guard for this reason: a re-evaluation that changes nothing records nothing."""
    return (incident.status == IncidentStatus.BLOCKED.value and decision.status is IncidentStatus.BLOCKED
            and (incident.details or {}).get("guard") == decision.guard and incident.status_reason == decision.reason)


#: states in which a component answers its checks
_ANSWERING = (ComponentState.UP, ComponentState.DEGRADED)


def healed_meanwhile(engine: Engine, req: RunRequest, t: Turn) -> RunEnd | None:
    """Before an automatic action: the component answers again (UP, or DEGRADED: slow but answering),
    or the run comes back from a wait (a backoff, a crash-loop delay, a settle window, an approval, a
    block's re-check), when the view of a DOWN component is as old as its probe backoff (up to
    min(30 s, 5 × interval)): look with real checks, and resolve ``self`` if healthy (it healed by
    itself, or by hand: no action of ours succeeded and verified).

    Must never break invariant 5: no action on a component healthy when its attempt is picked up. A
    first attempt, claimed as its component turned DOWN, acts on a view that is fresh; one claimed later
    than that (the incident was written late: the database was away when the component turned DOWN)
    looks too, as the DOWN component's view is then as old as its probe backoff."""
    answering = engine.health.state(t.row.id) in _ANSWERING
    if req.manual or not (answering or engine.waits.wrote(t.incident.id) or _late(engine, t)):
        return None
    settings = t.step.verify
    outcome = confirm_healthy(check_probe(effective_check(t.row)), max(settings.successes, t.row.success_threshold),
                              settings.interval_s, stop=engine.stop, clock=engine.clock, probe_timeout_s=t.row.timeout_s)
    if not outcome.passed:
        return None
    how = ("again" if answering else "when looked at fresh after waiting" if engine.waits.wrote(t.incident.id)
           else "when looked at fresh (its incident was picked up late)")
    return resolved(engine, req, t.row.id, step_index=None, resolution=Resolution.SELF,
                    reason=f"healthy {how} before step {t.index} attempt {t.pos.attempt}: no action needed",
                    results=outcome.passing())


#: a first attempt claimed more than this (or two intervals) after its component turned DOWN or FLAPPING
#: looks fresh before it acts (the soak's walk counts a restart within 3 s of a hand fix as a race)
LATE_CLAIM_S = 3.0


def _late(engine: Engine, t: Turn) -> bool:
    since = t.row.state_since
    return since is not None and (engine.clock.now() - since).total_seconds() > max(LATE_CLAIM_S, 2 * t.row.interval_s)


def approval_gate(engine: Engine, req: RunRequest, t: Turn) -> RunEnd | None:
    """A step that needs approval asks once, then waits (durably) for the yes or the timeout."""
    if not t.step.approval.required:
        return None
    state = approval.check(engine.db, t.incident.id, f"{t.run.number}:{t.index}", t.step.approval,
                           now=engine.clock.now(), passed=lambda at: engine.passed(t.incident.id, at))
    outcome = state.outcome
    if outcome in (approval.ApprovalOutcome.APPROVED, approval.ApprovalOutcome.PROCEED):
        engine.report(f"step {t.index} approval: {outcome.value}")
        return None
    if outcome is approval.ApprovalOutcome.PENDING:
        engine.report(f"step {t.index} ({t.step.label}) awaits approval: orchestrator incidents approve "
                      f"{t.incident.id}")
        return RunEnd(RunOutcome.WAITING, state.give_up_at, "awaiting approval")
    if outcome is approval.ApprovalOutcome.ESCALATE:
        return escalated(engine, req, t.row.id, f"approval for step {t.index} ({t.step.label}) timed out")
    return GONE


def breaker_trial(engine: Engine, req: RunRequest, t: Turn) -> None:
    """After the breaker's open period the first automatic action is its half-open trial."""
    if req.manual or t.run.trial_held or runs.breaker_state(t.row, req.limits) is not BreakerState.OPEN:
        return None
    records.record_breaker(engine.db, t.row.id, req.limits, succeeded=False, now=engine.clock.now(), take_trial=True)
    t.run = dataclasses.replace(t.run, trial_held=True)
    with engine.db.write() as session:
        runs.save(session, session.get_one(Incident, t.incident.id), t.run)
    return None


#: The gates, in order.
GATES: tuple[Gate, ...] = (settle, crash_loop, guards, healed_meanwhile, approval_gate, breaker_trial)


def before_attempt(engine: Engine, req: RunRequest, t: Turn) -> RunEnd | StepExit | None:
    """The first gate's decision, or None: act."""
    for gate in GATES:
        decision = gate(engine, req, t)
        if decision is not None:
            return decision
    return None

