"""Where a plan run stands, computed from the journal and kept in the incident, so any claim resumes it.

A *run* is one pass through the plan for an incident: the first automatic one, a manual ``recover``,
a run after a reopen. It spans many claims of the incident (a retry's backoff, an approval, a block
that cleared, a new owner after a crash all end a claim, not the run), so it is stored in the
incident's ``details["run"]``: its number, whether an operator started it, which opening of the
incident it belongs to (``reopen_count``), whether it holds the breaker's half-open trial, and per
step the highest attempt number that existed when it started (attempts above it are this run's;
attempt numbers keep growing across runs since the journal's unique key is (incident, step, attempt)).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.core.states import AttemptStatus, IncidentStatus
from orchestrator.db.models import Component, Incident, JournalEntry
from orchestrator.incidents import status
from orchestrator.plans import Limits, Step
from orchestrator.plugins.contract import Strategy, StrategyContext, VerifyMode
from orchestrator.recovery import journal
from orchestrator.recovery.snapshot import breaker_for
from orchestrator.resilience.breaker import BreakerState

S = IncidentStatus
#: Interrupted attempts (see :func:`interrupted`) that end a step all the same: a daemon that dies
#: mid-step every time must still end in a person, not in attempts forever.
MAX_INTERRUPTED = 3


@dataclass(frozen=True)
class Run:
    """The incident's current run."""

    number: int
    base: dict[int, int]
    manual: bool
    plan: str
    trial_held: bool = False  # this run took the breaker's half-open trial
    settled: bool = False  # the settle window (or the look around) is behind it
    settle_rounds: int = 0  # settle windows waited so far

    def record(self, opening: int) -> dict[str, Any]:
        return {"number": self.number, "base": {str(k): v for k, v in self.base.items()}, "manual": self.manual,
                "plan": self.plan, "opening": opening, "trial_held": self.trial_held, "settled": self.settled,
                "settle_rounds": self.settle_rounds}


@dataclass(frozen=True)
class Position:
    """One step's standing in the current run."""

    done: bool  # attempts used up, failed permanently, or interrupted and not safe to repeat
    attempt: int  # the next attempt number to claim
    executed_in_run: int  # attempts of this step this run that really ran
    executed_in_incident: bool  # any action at all for this incident so far
    last_executed_step: int | None


def current(incident: Incident) -> Run | None:
    """The run in progress for the incident's current opening, if any."""
    record = (incident.details or {}).get("run")
    if not record or record.get("opening") != incident.reopen_count:
        return None
    return Run(int(record["number"]), {int(k): int(v) for k, v in record.get("base", {}).items()},
               bool(record.get("manual")), str(record.get("plan", "")), bool(record.get("trial_held")),
               bool(record.get("settled")), int(record.get("settle_rounds", 0)))


def start(session: Session, incident: Incident, plan_name: str, *, manual: bool, now: datetime) -> Run:
    """Resume the incident's run, or begin a new one (always for a manual recovery)."""
    run = None if manual else current(incident)
    if run is not None:
        return run
    base: dict[int, int] = {}
    for row in journal.rows_for(session, incident.id):
        if row.executed:  # a skipped number is still free for this run's first action
            base[row.step_index] = max(base.get(row.step_index, 0), row.attempt)
    previous = (incident.details or {}).get("run") or {}
    run = Run(int(previous.get("number", 0)) + 1, base, manual, plan_name)
    save(session, incident, run)
    incident.plan = plan_name
    incident.updated_at = now
    return run


def save(session: Session, incident: Incident, run: Run) -> None:
    """Store ``run`` as the incident's current run (in the caller's transaction)."""
    incident.details = {**(incident.details or {}), "run": run.record(incident.reopen_count)}
    session.flush()


def interrupted(row: JournalEntry) -> bool:
    """The attempt's owner died (or lost the database) and nothing says how its action ended: its
    command left no exit status and the component was not healthy afterwards."""
    return bool((row.verification or {}).get("interrupted"))


def position(rows: list[JournalEntry], index: int, step: Step, base: dict[int, int], strategy: Strategy) -> Position:
    """Where step ``index`` stands, given the incident's whole journal.

    An interrupted attempt is not one of the step's ``attempts`` (a crash of ours is not a failure of
    the plan: the next attempt runs, after a fresh look); at most MAX_INTERRUPTED of them end the step
    all the same, so a daemon that keeps dying mid-step still ends in a person (invariant 6). A strategy
    that is never verified and not idempotent (a notification) is not repeated after an interruption:
    nothing would tell a repeat from a duplicate."""
    of_step = [r for r in rows if r.step_index == index]
    this_run = [r for r in of_step if r.attempt > base.get(index, 0)]
    broken = [r for r in this_run if interrupted(r)]
    executed = [r for r in this_run if r.executed and not interrupted(r)]
    unsafe = not strategy.idempotent and strategy.verification is VerifyMode.NONE

    def ends_step(r: JournalEntry) -> bool:
        v = r.verification or {}
        return bool(v.get("permanent")) or (unsafe and interrupted(r)) or (
            r.executed and r.status == AttemptStatus.SUCCEEDED.value)

    acted = [r.step_index for r in rows if r.executed]
    return Position(
        done=len(executed) >= step.attempts or len(broken) >= MAX_INTERRUPTED or any(ends_step(r) for r in this_run),
        attempt=max((r.attempt for r in of_step if r.executed), default=0) + 1,
        executed_in_run=len(executed),
        executed_in_incident=bool(acted),
        last_executed_step=acted[-1] if acted else None,
    )


def verified_in_run(rows: list[JournalEntry], run: Run) -> JournalEntry | None:
    """This run's last attempt that acted and verified healthy, if any: its owner died, or lost the
    database, between journaling it and resolving the incident by it."""
    done = [r for r in rows if r.attempt > run.base.get(r.step_index, 0) and r.executed
            and r.status == AttemptStatus.SUCCEEDED.value and (r.verification or {}).get("passed")]
    return max(done, key=lambda r: (r.finished_at or r.claimed_at, r.id), default=None)


def mark_recovering(session: Session, incident_id: int, now: datetime, flap_episode: int | None) -> bool:
    """In the claim's transaction: the incident is being acted on; False if it closed meanwhile."""
    incident = session.get(Incident, incident_id)
    if incident is None or incident.status == S.RESOLVED.value:
        return False
    # acted on now, not waiting: what it waited for (a guard's block, a backoff) is history, not its state
    if incident.status != S.RECOVERING.value and not status.transition(
            session, incident_id, incident.status, S.RECOVERING, now=now, blocked_by=None, waiting_for=None,
            waiting_until=None):
        return False
    if flap_episode is not None:
        details = dict(incident.details or {})
        episodes = sorted({*details.get("acted_flap_episodes", []), flap_episode})
        incident.details = {**details, "acted_flap_episodes": episodes}
    return True


def describe(strategy: Strategy, context: StrategyContext) -> str:
    """``strategy.describe`` that never raises (a description is not worth failing a step over)."""
    try:
        return strategy.describe(context)
    except Exception as exc:  # noqa: BLE001 - third-party code; the reason is shown instead
        return f"{strategy.name} (cannot describe: {exc})"


def component_of(session: Session, incident_id: int) -> Component | None:
    """The component an incident is about (None for a fleet incident or a removed component)."""
    incident = session.get(Incident, incident_id)
    return session.get(Component, incident.component_id) if incident and incident.component_id else None


def breaker_state(row: Component, limits: Limits) -> BreakerState:
    return breaker_for(row, limits).state
