"""Taking over an incident: settle what a dead owner left running, and look before acting again.

Run on every claim whose incident was found at start-up, taken from another owner, or has journal
rows still ``running`` (their owner died, or lost the database, mid-attempt — nobody runs it now):

1. Each running row is settled by what can be known of its attempt, never by running it again:
   - the action had returned successfully and verification was under way → verify now;
   - its command still runs on this host (same pid *and* start time, from /proc) → it is given the
     rest of its own step deadline; still running then → its process group is killed: ``timed_out``
     (it overran its deadline: a failed attempt like any other);
   - its command finished and its exit status was recorded (orchestrator.core.proc) → that status
     and a verification decide: exit 0 and healthy → ``succeeded``, resolved ``auto`` by it; exit 0
     and not healthy → ``failed_verification``; another status → ``failed``;
   - nothing recorded (the command was killed with its owner, as a cgroup kill does, or never
     started) → verify now: healthy → ``succeeded`` (``auto``); else ``failed``, *interrupted*.
   An interrupted attempt does not count against the step's ``attempts`` (the next attempt runs,
   after the fresh look below); see orchestrator.recovery.runs.position for its bound.
   The record says "its owner died" only when it did: a row this process claimed itself was left by a
   run of ours that the database interrupted.
2. No attempt verified → one fresh check of the component before anything acts: healthy (confirmed
   ``success_threshold`` times) → resolved ``self`` with no action, saying why; or ``auto`` when an
   attempt of this run had acted and verified and its owner died before resolving the incident.

Guarantee kept (docs/guarantees.md, I5): nothing acts on a component healthy when picked up, and the
journal says what the command did, not what the takeover guessed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from orchestrator.components.targets import effective_check
from orchestrator.core.proc import host_identity, kill_orphan_group, process_start_ticks, recorded_exit
from orchestrator.core.states import AttemptStatus, Resolution
from orchestrator.db.models import Component, DaemonInstance, JournalEntry
from orchestrator.plans import Verify
from orchestrator.recovery import journal
from orchestrator.recovery.decisions import resolved
from orchestrator.recovery.verify import Verification, check_probe, confirm_healthy, pause, verify_until
from orchestrator.recovery.work import STOPPED, Engine, RunEnd, RunRequest

log = logging.getLogger("orchestrator.recovery")

KILLED = "timed out: its owner died and its command was still running at its step deadline; its process group was killed"
#: How often an orphaned command is looked at while it is given the rest of its deadline.
ORPHAN_POLL_S = 0.1
UNVERIFIED = ("interrupted: its owner died mid-step and its command left no exit status (killed with it, or never "
              "started); the component was not verified healthy afterwards, so the step goes on")


def take_over(engine: Engine, req: RunRequest, row: Component, orphans: list[JournalEntry], *,
              fresh: bool = True, verified: JournalEntry | None = None, why: str | None = None) -> RunEnd | None:
    """Settle ``orphans``, then (``fresh``, and nothing verified) check fresh; a RunEnd when it closed.
    ``verified`` is this run's attempt that acted and verified before its owner died unresolved: a
    healthy fresh check then resolves the incident ``auto`` by it, as its owner would have. ``why``
    says why a healthy fresh check closes it when that is not a takeover (a hold that ended)."""
    for entry in orphans:
        end = _settle(engine, req, row, entry)
        if end is not None:
            return end
    if not fresh:
        return None
    why = why or ("healthy when picked up after restart" if req.takeover
                  else "healthy when picked up again after its run was interrupted")
    if verified is not None:
        away = _away(engine, verified)
        return fresh_check(engine, req, row, why=f"step {verified.step_index} attempt {verified.attempt} verified "
                           f"before {away}; {why}", credit=verified.step_index)
    return fresh_check(engine, req, row, why=why)


def fresh_check(engine: Engine, req: RunRequest, row: Component, *, why: str,
                credit: int | None = None) -> RunEnd | None:
    """One real check (confirmed ``success_threshold`` times when it passes): healthy → resolved
    ``self`` with ``why`` (``auto`` by step ``credit`` when that step's verified action is why it is
    healthy); None when it is not healthy (the plan goes on)."""
    settings = req.plan.steps[0].verify
    outcome = confirm_healthy(check_probe(effective_check(row)), _required(row, settings), settings.interval_s,
                              stop=engine.stop, clock=engine.clock, probe_timeout_s=row.timeout_s)
    log.info("component=%s incident=%s fresh check before acting: %s", row.name, req.incident_id, outcome.reason)
    if not outcome.passed:
        return None
    return resolved(engine, req, row.id, step_index=credit,
                    resolution=Resolution.SELF if credit is None else Resolution.AUTO, reason=why,
                    results=outcome.passing())


def _required(row: Component, settings: Verify) -> int:
    # as many passes as the health plane needs to call it UP, so both agree at once
    return max(settings.successes, row.success_threshold)


def _away(engine: Engine, entry: JournalEntry) -> str:
    """How the attempt's owner went away, as the record says it: this process's own interrupted run, a
    daemon that stopped cleanly (its instance row says so), or one that died. Invariant 5: the journal
    says what happened, not the worst guess."""
    if entry.id in engine.claimed:
        return "its run was interrupted"
    with engine.db.read() as session:
        stopped = entry.owner is not None and session.scalar(
            select(DaemonInstance.stopped_at).where(DaemonInstance.id == entry.owner)) is not None
    return "its owner stopped" if stopped else "its owner died"


def _settle(engine: Engine, req: RunRequest, row: Component, entry: JournalEntry) -> RunEnd | None:
    tag = f"component={row.name} incident={entry.incident_id} step={entry.step_index} attempt={entry.attempt}"
    away = _away(engine, entry)
    if (running := _runs_here(entry)) and not _awaited(engine, req, entry):
        if engine.stop.is_set():
            return STOPPED  # shutting down: the next owner gives it the rest of its deadline
        kill_orphan_group(*running)
        detail = KILLED.replace("its owner died", away)
        log.warning("%s reconciled: %s (pid %s)", tag, detail, entry.proc_pid)
        journal.finish(engine.db, entry.id, status=AttemptStatus.TIMED_OUT, now=engine.clock.now(), detail=detail,
                       verification={"reconciled": True, "killed_pid": entry.proc_pid})
        return None
    code = _exit_of(entry)
    if code is not None and code != 0:
        detail = f"{entry.strategy} exited with status {code} after {away}"
        log.warning("%s reconciled: %s", tag, detail)
        journal.finish(engine.db, entry.id, status=AttemptStatus.FAILED, now=engine.clock.now(), detail=detail,
                       verification={"reconciled": True, "exit": code})
        return None
    outcome = _verify(engine, req, row, entry)
    acted = code == 0 or (entry.verification or {}).get("action") == journal.ACTION_SUCCEEDED
    record = {**outcome.as_record(), "reconciled": True, "exit": code, "interrupted": not outcome.passed and not acted}
    if not outcome.passed:
        status = AttemptStatus.FAILED_VERIFICATION if acted else AttemptStatus.FAILED
        detail = (f"{_action_detail(entry, code)} after {away}; not verified healthy afterwards" if acted
                  else UNVERIFIED.replace("its owner died", away))
        log.warning("%s reconciled: %s", tag, detail)
        journal.finish(engine.db, entry.id, status=status, now=engine.clock.now(), detail=detail, verification=record)
        return None
    detail = f"{_action_detail(entry, code)} after {away}; the component verified healthy after it"
    log.warning("%s reconciled: %s", tag, detail)
    journal.finish(engine.db, entry.id, status=AttemptStatus.SUCCEEDED, now=engine.clock.now(), detail=detail,
                   verification=record)
    return resolved(engine, req, row.id, step_index=entry.step_index, resolution=Resolution.AUTO,
                    reason=f"step {entry.step_index} attempt {entry.attempt} verified after {away}",
                    results=outcome.passing())


def _started_here(entry: JournalEntry) -> tuple[int, int] | None:
    """The attempt's command as (pid, start ticks) when it was started on this host, else None."""
    if entry.proc_pid is None or entry.proc_start_ticks is None or entry.proc_host != host_identity():
        return None
    return entry.proc_pid, entry.proc_start_ticks


def _exit_of(entry: JournalEntry) -> int | None:
    """The exit status the attempt's command recorded on this host, or None."""
    started = _started_here(entry)
    return None if started is None else recorded_exit(journal.exit_dir(), *started)


def _runs_here(entry: JournalEntry) -> tuple[int, int] | None:
    """The command's (pid, start ticks) while it still runs on this host (the pid was not reused), else None."""
    started = _started_here(entry)
    return started if started is not None and process_start_ticks(started[0]) == started[1] else None


def _awaited(engine: Engine, req: RunRequest, entry: JournalEntry) -> bool:
    """Give the orphaned command the rest of its step deadline; True if it ended within it."""
    steps = req.plan.steps
    timeout_s = steps[entry.step_index].timeout_s if entry.step_index < len(steps) else 0.0
    started = entry.started_at or entry.claimed_at
    remaining_s = (started + timedelta(seconds=timeout_s) - engine.clock.now()).total_seconds()
    deadline = engine.clock.monotonic() + max(0.0, remaining_s)
    while _runs_here(entry):
        if engine.clock.monotonic() >= deadline or not pause(ORPHAN_POLL_S, clock=engine.clock, stop=engine.stop):
            return False
    return True


def _verify(engine: Engine, req: RunRequest, row: Component, entry: JournalEntry) -> Verification:
    steps = req.plan.steps
    settings = steps[entry.step_index].verify if entry.step_index < len(steps) else Verify()
    return verify_until(check_probe(effective_check(row)), settings, mode="check", stop=engine.stop,
                        clock=engine.clock, probe_timeout_s=row.timeout_s, required=_required(row, settings))


def _action_detail(entry: JournalEntry, code: int | None) -> str:
    if (entry.verification or {}).get("action") == journal.ACTION_SUCCEEDED:
        return f"{entry.detail or 'the action'}; verification was under way"
    if code is not None:
        return f"{entry.strategy} finished with status {code}"
    return f"{entry.strategy} was interrupted (no exit status recorded)"
