"""The step journal: one row per attempt of one step for one incident, claimed before the action.

Exactly once: :func:`claim` INSERTs the row (status ``running``) and COMMITs before the side effect
runs. The unique key (incident_id, step_index, attempt) means a second claimant — another instance,
or this one after a crash — gets an IntegrityError and must not act. While the attempt runs, the row
learns what a later owner needs if this one dies: the pid of the command it spawned
(:func:`record_process`) and, before verification starts, how the action itself ended
(:func:`record_action`). :func:`finish` then records how the attempt ended. Everything stored is
redacted and capped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.core.config import state_dir
from orchestrator.core.errors import ClaimRefused
from orchestrator.core.proc import forget_exit, host_identity, process_start_ticks
from orchestrator.core.redaction import redact, redact_view, secret_values
from orchestrator.core.states import AttemptStatus
from orchestrator.db.engine import Database, rows_changed
from orchestrator.db.models import Component, JournalEntry
from orchestrator.plugins.contract import MAX_OUTPUT_CHARS

log = logging.getLogger("orchestrator.recovery")

#: Longest one-line detail kept (the output column holds the long text).
MAX_DETAIL_CHARS = 500


#: verification["action"] of a running row whose action returned successfully; verification follows
ACTION_SUCCEEDED = "succeeded"


def exit_dir() -> Path:
    """Where this host's step commands record their exit status (orchestrator.core.proc), named by the
    pid and start time the journal keeps for each attempt."""
    return state_dir() / "exits"


def _json_safe(data: Mapping[str, Any], secrets: frozenset[str]) -> dict[str, Any]:
    # Strategy facts come from third-party code: whatever they hold, store plain, redacted JSON.
    return redact_view(json.loads(json.dumps(dict(data), default=str)), secrets)


def _line(text: str | None, secrets: frozenset[str] = frozenset()) -> str | None:
    return " ".join(redact(text, secrets).split())[:MAX_DETAIL_CHARS] if text else text


def _secrets(session: Session, component_id: int | None) -> frozenset[str]:
    """The component's secret values, read in the caller's session (a token a command echoes is
    masked in the journal even when its var's name does not look secret)."""
    row = session.get(Component, component_id) if component_id is not None else None
    return secret_values(row) if row is not None else frozenset()


def claim(db: Database, *, incident_id: int, component_id: int | None, step_index: int, attempt: int,
          strategy: str, owner: str, now: datetime, description: str | None = None, owner_epoch: int | None = None,
          also: Callable[[Session], None] | None = None) -> int | None:
    """Insert and commit a ``running`` row; return its id, or None if this attempt was already claimed
    (or ``also`` — run in the same transaction — raised ClaimRefused).

    An attempt number a guard skipped (a hold, a block: :func:`record_not_executed`) is not used up:
    its ``skipped`` row is taken over by compare-and-set (exactly one claimant changes it), so the
    numbers in the journal and in the commands' ``{attempt}`` count actions, not looks."""
    try:
        with db.write() as session:
            entry = JournalEntry(incident_id=incident_id, component_id=component_id, step_index=step_index,
                                 attempt=attempt, strategy=strategy, status=AttemptStatus.RUNNING.value,
                                 executed=True, owner=owner, owner_epoch=owner_epoch, claimed_at=now,
                                 started_at=now, description=_line(description, _secrets(session, component_id)))
            session.add(entry)
            session.flush()  # the unique key is checked here, before anything else happens
            if also is not None:
                also(session)
            return entry.id
    except IntegrityError:
        pass
    except ClaimRefused as exc:
        log.info("incident=%s step=%s attempt=%s claim refused: %s", incident_id, step_index, attempt, exc)
        return None
    try:
        with db.write() as session:
            entry_id = _take_skipped(session, incident_id, step_index, attempt, values=dict(
                strategy=strategy, status=AttemptStatus.RUNNING.value, executed=True, owner=owner,
                owner_epoch=owner_epoch, claimed_at=now, started_at=now, finished_at=None, skip_reason=None,
                detail=None, description=_line(description, _secrets(session, component_id))))
            if entry_id is None:
                log.warning("incident=%s step=%s attempt=%s already claimed: not acting", incident_id, step_index,
                            attempt)
                return None
            if also is not None:
                also(session)
            return entry_id
    except ClaimRefused as exc:
        log.info("incident=%s step=%s attempt=%s claim refused: %s", incident_id, step_index, attempt, exc)
        return None


def _take_skipped(session: Session, incident_id: int, step_index: int, attempt: int, *,
                  values: dict[str, Any]) -> int | None:
    """Compare-and-set on a not-executed row of this attempt; its id when this call changed it."""
    where = (JournalEntry.incident_id == incident_id, JournalEntry.step_index == step_index,
             JournalEntry.attempt == attempt, JournalEntry.executed.is_(False),
             JournalEntry.status == AttemptStatus.SKIPPED.value)
    entry_id = session.scalar(select(JournalEntry.id).where(*where))
    if entry_id is None or rows_changed(session.execute(
            update(JournalEntry).where(JournalEntry.id == entry_id, *where).values(**values))) != 1:
        return None
    return entry_id


def record_process(db: Database, entry_id: int, pid: int) -> None:
    """The attempt spawned ``pid``: keep it with its start time, so a later owner can kill it safely."""
    with db.write() as session:
        entry = session.get(JournalEntry, entry_id)
        if entry is not None:
            entry.proc_host, entry.proc_pid, entry.proc_start_ticks = host_identity(), pid, process_start_ticks(pid)


def record_action(db: Database, entry_id: int, *, detail: str | None, output: str | None,
                  facts: Mapping[str, Any] | None) -> None:
    """The action returned successfully and verification starts: if this owner dies now, the next one
    knows the action did its part and only verification is left."""
    with db.write() as session:
        entry = session.get(JournalEntry, entry_id)
        if entry is None:
            return
        secrets = _secrets(session, entry.component_id)
        entry.detail = _line(detail, secrets)
        if output is not None:
            entry.output = redact(output, secrets)[-MAX_OUTPUT_CHARS:]
        if facts is not None:
            entry.facts = _json_safe(facts, secrets)
        entry.verification = {"action": ACTION_SUCCEEDED, "verifying": True}


def record_not_executed(db: Database, *, incident_id: int, component_id: int | None, step_index: int,
                        attempt: int, strategy: str, owner: str, now: datetime, reason: str,
                        description: str | None = None) -> int | None:
    """Record an attempt that did not run (a guard, dry-run, observe-only): ``skipped``, executed=false.
    Skipped again before it ran: the same row says the newest reason (the number stays free for the
    action, see :func:`claim`)."""
    try:
        with db.write() as session:
            secrets = _secrets(session, component_id)
            entry = JournalEntry(incident_id=incident_id, component_id=component_id, step_index=step_index,
                                 attempt=attempt, strategy=strategy, status=AttemptStatus.SKIPPED.value,
                                 executed=False, owner=owner, claimed_at=now, finished_at=now,
                                 description=_line(description, secrets), skip_reason=_line(reason, secrets),
                                 detail=_line(reason, secrets))
            session.add(entry)
            session.flush()
            return entry.id
    except IntegrityError:
        pass
    with db.write() as session:
        secrets = _secrets(session, component_id)
        return _take_skipped(session, incident_id, step_index, attempt, values=dict(
            owner=owner, claimed_at=now, finished_at=now, skip_reason=_line(reason, secrets),
            detail=_line(reason, secrets)))


def finish(db: Database, entry_id: int, *, status: AttemptStatus, now: datetime, detail: str | None = None,
           output: str | None = None, facts: Mapping[str, Any] | None = None,
           verification: Mapping[str, Any] | None = None) -> bool:
    """Record how a claimed attempt ended; False if the row was no longer ``running`` (a later owner
    settled it first: its record stands)."""
    with db.write() as session:
        entry = session.get(JournalEntry, entry_id)
        if entry is None or entry.status != AttemptStatus.RUNNING.value:
            return False
        secrets = _secrets(session, entry.component_id)
        entry.status = status.value
        entry.finished_at = now
        entry.detail = _line(detail, secrets)
        if output is not None:
            entry.output = redact(output, secrets)[-MAX_OUTPUT_CHARS:]
        if facts is not None:
            entry.facts = _json_safe(facts, secrets)
        if verification is not None:
            entry.verification = _json_safe(verification, secrets)
        pid, ticks, host = entry.proc_pid, entry.proc_start_ticks, entry.proc_host
    if pid is not None and ticks is not None and host == host_identity():
        forget_exit(exit_dir(), pid, ticks)  # the journal holds the outcome now
    return True


def rows_for(session: Session, incident_id: int) -> list[JournalEntry]:
    """An incident's journal, in step/attempt order."""
    return list(session.scalars(select(JournalEntry).where(JournalEntry.incident_id == incident_id)
                                .order_by(JournalEntry.step_index, JournalEntry.attempt)))


def action_times(session: Session, component_id: int, since: datetime) -> list[datetime]:
    """When the component's executed actions were claimed, after ``since`` (the budget's window)."""
    return list(session.scalars(select(JournalEntry.claimed_at).where(
        JournalEntry.component_id == component_id, JournalEntry.executed.is_(True),
        JournalEntry.claimed_at > since)))


def running_rows(session: Session, incident_id: int) -> list[JournalEntry]:
    """The incident's rows still ``running``: when no run of this process owns the incident, their
    owner died (or lost its lease) mid-attempt."""
    return list(session.scalars(select(JournalEntry).where(
        JournalEntry.incident_id == incident_id, JournalEntry.status == AttemptStatus.RUNNING.value)
        .order_by(JournalEntry.step_index, JournalEntry.attempt)))
