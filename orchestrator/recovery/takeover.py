"""Taking over an incident: settle what a dead owner left running, and look before acting again.

Run on every claim whose incident was found at start-up, taken from another owner, or has journal
rows still ``running`` (their owner died or lost its lease mid-attempt — nobody else runs it now):

1. Each running row is settled by what can be known of its attempt, never by running it again:
   - the action had returned successfully and verification was under way → verify now;
   - its command still runs on this host (same pid *and* start time, from /proc) → it is given the
     rest of its own step deadline; still running then → its process group is killed: ``timed_out``,
     interrupted (so an orphan never outlives its timeout, nor acts later unrecorded);
   - its command finished (before, or while given its deadline; its exit status is lost with its
     owner), or nothing is known → verify now.
   Verified healthy → that attempt ``succeeded`` and the incident is resolved ``auto`` by it: the
   action ran to its end and the component is healthy after it. Otherwise ``failed``, interrupted
   (the plan goes on; an interrupted step is repeated only if its strategy is idempotent).
2. No attempt verified → one fresh check of the component before anything acts: healthy (confirmed
   ``success_threshold`` times) → resolved ``self`` with no action, saying why; or ``auto`` when an
   attempt of this run had acted and verified and its owner died before resolving the incident.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from orchestrator.core.proc import host_identity, kill_orphan_group, process_start_ticks
from orchestrator.core.states import AttemptStatus, Resolution
from orchestrator.db.models import Component, JournalEntry
from orchestrator.plans import Verify
from orchestrator.recovery import journal
from orchestrator.recovery.decisions import resolved
from orchestrator.recovery.targets import effective_check
from orchestrator.recovery.verify import Verification, check_probe, confirm_healthy, pause, verify_until
from orchestrator.recovery.work import STOPPED, Engine, RunEnd, RunRequest

log = logging.getLogger("orchestrator.recovery")

KILLED = "interrupted: its owner died and it was still running at its step deadline; its process group was killed"
#: How often an orphaned command is looked at while it is given the rest of its deadline.
ORPHAN_POLL_S = 0.1
UNVERIFIED = "interrupted: its owner died mid-step and the component was not verified healthy afterwards"


def take_over(engine: Engine, req: RunRequest, row: Component, orphans: list[JournalEntry], *,
              fresh: bool = True, verified: JournalEntry | None = None) -> RunEnd | None:
    """Settle ``orphans``, then (``fresh``, and nothing verified) check fresh; a RunEnd when it closed.
    ``verified`` is this run's attempt that acted and verified before its owner died unresolved: a
    healthy fresh check then resolves the incident ``auto`` by it, as its owner would have."""
    for entry in orphans:
        end = _settle(engine, req, row, entry)
        if end is not None:
            return end
    if not fresh:
        return None
    why = "healthy when picked up after restart" if req.takeover \
        else "healthy when picked up again after its run was interrupted"
    if verified is not None:
        return fresh_check(engine, req, row, why=f"step {verified.step_index} attempt {verified.attempt} verified "
                           f"before its owner died; {why}", credit=verified.step_index)
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


def _settle(engine: Engine, req: RunRequest, row: Component, entry: JournalEntry) -> RunEnd | None:
    tag = f"component={row.name} incident={entry.incident_id} step={entry.step_index} attempt={entry.attempt}"
    if _runs_here(entry) and not _awaited(engine, req, entry):
        if engine.stop.is_set():
            return STOPPED  # shutting down: the next owner gives it the rest of its deadline
        kill_orphan_group(entry.proc_pid, entry.proc_start_ticks)
        log.warning("%s reconciled: %s (pid %s)", tag, KILLED, entry.proc_pid)
        journal.finish(engine.db, entry.id, status=AttemptStatus.TIMED_OUT, now=engine.clock.now(), detail=KILLED,
                       verification={"reconciled": True, "interrupted": True, "killed_pid": entry.proc_pid})
        return None
    outcome = _verify(engine, req, row, entry)
    record = {**outcome.as_record(), "reconciled": True, "interrupted": not outcome.passed}
    if not outcome.passed:
        log.warning("%s reconciled: %s", tag, UNVERIFIED)
        journal.finish(engine.db, entry.id, status=AttemptStatus.FAILED, now=engine.clock.now(), detail=UNVERIFIED,
                       verification=record)
        return None
    detail = _verified_detail(entry)
    log.warning("%s reconciled: %s", tag, detail)
    journal.finish(engine.db, entry.id, status=AttemptStatus.SUCCEEDED, now=engine.clock.now(), detail=detail,
                   verification=record)
    return resolved(engine, req, row.id, step_index=entry.step_index, resolution=Resolution.AUTO,
                    reason=f"step {entry.step_index} attempt {entry.attempt} verified after its owner died",
                    results=outcome.passing())


def _runs_here(entry: JournalEntry) -> bool:
    """True while the attempt's command still runs on this host (the pid was not reused)."""
    if entry.proc_pid is None or entry.proc_start_ticks is None or entry.proc_host != host_identity():
        return False
    return process_start_ticks(entry.proc_pid) == entry.proc_start_ticks


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


def _verified_detail(entry: JournalEntry) -> str:
    previous = entry.detail or "the action"
    if (entry.verification or {}).get("action") == journal.ACTION_SUCCEEDED:
        return f"{previous}; verified after its owner died during verification"
    if entry.proc_pid is not None:
        return "finished after its owner died (exit status unknown); the component verified healthy after it"
    return "interrupted: its owner died mid-step; the component verified healthy after it"
