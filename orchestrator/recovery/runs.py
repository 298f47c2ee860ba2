"""Where a plan run stands, computed from the journal, so a run can be resumed after a restart.

A *run* is one pass through the plan for an incident (the first automatic one, a manual
``recover``, a run after a reopen). Attempt numbers keep growing across runs — the journal's unique
key is (incident, step, attempt) — so each run records, per step, the highest attempt number that
existed when it started (``details.run_base``); attempts above it belong to this run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from orchestrator.core.states import AttemptStatus, IncidentStatus
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, Incident, JournalEntry
from orchestrator.plans import Limits, Step
from orchestrator.plugins.contract import Strategy, StrategyContext
from orchestrator.recovery import journal
from orchestrator.recovery.journal import ClaimRefused
from orchestrator.recovery.records import set_status
from orchestrator.recovery.snapshot import breaker_for
from orchestrator.resilience.breaker import BreakerState

S = IncidentStatus


@dataclass(frozen=True)
class Position:
    """One step's standing in the current run."""

    done: bool  # attempts used up, failed permanently, or interrupted and not safe to repeat
    attempt: int  # the next attempt number to claim
    executed_in_run: int  # attempts of this step this run that really ran
    executed_in_incident: bool  # any action at all for this incident so far
    last_executed_step: int | None
    busy: bool  # a row is running right now: someone else is working on this incident


def start(db: Database, incident_id: int, plan_name: str, *, resume: bool, now: datetime) -> tuple[int | None, dict[int, int]]:
    """Begin a new run (or pick up the current one); (run number, base attempt per step).
    Run number None when the incident is gone or resolved."""
    with db.write() as session:
        incident = session.get(Incident, incident_id)
        if incident is None or incident.status == S.RESOLVED.value:
            return None, {}
        details = dict(incident.details or {})
        if resume and "run" in details:
            return int(details["run"]), {int(k): int(v) for k, v in details.get("run_base", {}).items()}
        base: dict[int, int] = {}
        for row in journal.rows_for(session, incident_id):
            base[row.step_index] = max(base.get(row.step_index, 0), row.attempt)
        run = int(details.get("run", 0)) + 1
        incident.details = {**details, "run": run, "run_base": {str(k): v for k, v in base.items()}}
        incident.plan = plan_name
        incident.updated_at = now
        return run, base


def position(rows: list[JournalEntry], index: int, step: Step, base: dict[int, int], strategy: Strategy) -> Position:
    """Where step ``index`` stands, given the incident's whole journal."""
    of_step = [r for r in rows if r.step_index == index]
    this_run = [r for r in of_step if r.attempt > base.get(index, 0)]
    executed = [r for r in this_run if r.executed]

    def ends_step(r: JournalEntry) -> bool:
        v = r.verification or {}
        interrupted_unsafe = bool(v.get("interrupted")) and not strategy.idempotent
        return bool(v.get("permanent")) or interrupted_unsafe or (r.executed and r.status == AttemptStatus.SUCCEEDED.value)

    acted = [r.step_index for r in rows if r.executed]
    return Position(
        done=len(executed) >= step.attempts or any(ends_step(r) for r in this_run),
        attempt=max((r.attempt for r in of_step), default=0) + 1,
        executed_in_run=len(executed),
        executed_in_incident=bool(acted),
        last_executed_step=acted[-1] if acted else None,
        busy=any(r.status == AttemptStatus.RUNNING.value for r in rows),
    )


def mark_recovering(session: Session, incident_id: int, now: datetime, flap_episode: int | None) -> None:
    """In the claim's transaction: the incident is being worked on (refuse the claim if it closed)."""
    if not set_status(session, incident_id, S.RECOVERING, now=now, blocked_by=None):
        raise ClaimRefused("the incident is no longer active")
    if flap_episode is not None:
        incident = session.get(Incident, incident_id)
        details = dict(incident.details or {})
        episodes = sorted({*details.get("acted_flap_episodes", []), flap_episode})
        incident.details = {**details, "acted_flap_episodes": episodes}


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
