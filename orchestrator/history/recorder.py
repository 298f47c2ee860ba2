"""The single database writer: batched results, immediate transitions and incidents, never silent loss.

The judge hands over batches through a queue; nothing else writes results or the state mirror. One
thread writes; it sleeps until its next flush and is woken early only by a transition, a full batch
or ``stop()`` (a wake per result would cost a thread switch per check, more CPU than writing the row):

1. Results are collected and written every ``flush_interval_s`` or every ``max_batch`` rows, as one
   Core ``executemany`` (ORM objects cost 25–40 µs a row even batched), together with the latest live
   state of each component touched (counters, last result, ``next_check_at``).
2. A transition flushes at once, in the same transaction as its incident change; transitions and
   state-mirror updates are written in bulk, per-minute rollups upserted in bulk.
3. When the database is unreachable the batch is kept and retried with backoff. Results beyond
   ``max_buffer`` are dropped oldest-first and counted; transitions are never dropped.
4. Results of a component removed meanwhile are dropped knowingly (``dropped_removed``, logged once
   per component), never written: ``forget()`` from the judge, or a foreign-key refusal at write.

Incidents change in the same transaction as the transition that caused them (through
orchestrator.incidents.lifecycle); the recovery loop and the notifier find them in the database.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.states import ComponentState
from orchestrator.db.engine import Database
from orchestrator.db.models import CheckResultRow, Component, StateTransition
from orchestrator.db.types import UTCDateTime
from orchestrator.health.result import CheckResult
from orchestrator.history.rollup import Rollups, upsert_rollups
from orchestrator.history.stats import RecorderStats
from orchestrator.incidents import lifecycle as incidents
from orchestrator.resilience.backoff import full_jitter_delay

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_S = 1.0
DEFAULT_MAX_BATCH = 2000
#: results kept in memory while the database is away (~200 bytes each: ~40 MB at the cap)
DEFAULT_MAX_BUFFER = 200_000
#: retry ceiling while the database is unreachable
RETRY_CAP_S = 30.0


@dataclass(frozen=True, slots=True)
class LiveState:
    """A component's state after one check, as the tracker saw it."""

    state: ComponentState
    since: datetime | None
    consecutive_failures: int
    consecutive_successes: int
    flap_episode: int
    #: when the dispatcher will check it next (None for a verification probe or an unknown time)
    next_check_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ResultItem:
    component_id: int
    result: CheckResult
    lateness_ms: float | None
    reliable: bool
    live: LiveState


@dataclass(frozen=True, slots=True)
class TransitionItem:
    component_id: int
    component_name: str
    from_state: ComponentState
    to_state: ComponentState
    at: datetime
    reason: str | None
    flap_episode: int | None


class Recorder:
    """Owns the write path. ``start()`` runs the writer thread; ``stop()`` flushes what it can."""

    def __init__(self, db: Database, *, clock: Clock = SYSTEM_CLOCK, flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
                 max_batch: int = DEFAULT_MAX_BATCH, max_buffer: int = DEFAULT_MAX_BUFFER,
                 reopen_window_s: float = incidents.DEFAULT_REOPEN_WINDOW_S) -> None:
        self.db = db
        self.clock = clock
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.max_buffer = max_buffer
        self.reopen_window_s = reopen_window_s
        self.dropped = 0  # results lost to a long outage: reported, never silent
        self.dropped_removed = 0  # results of components removed meanwhile: dropped knowingly
        self.written = 0
        self._removed: set[int] = set()
        self.db_healthy = True
        #: counters and histograms for /metrics, updated once per committed batch
        self.stats = RecorderStats()
        self._queue: queue.SimpleQueue[ResultItem | TransitionItem | _Batch | int | None] = queue.SimpleQueue()
        self._wake = threading.Event()  # something must be written before the next flush is due
        self._results: deque[ResultItem] = deque()
        self._transitions: deque[TransitionItem] = deque()
        self._rollups = Rollups()
        self._pending_rollups: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()
        self._failures = 0

    # -- producers (any thread) --------------------------------------------------------------
    def add_result(self, item: ResultItem) -> None:
        self._queue.put(item)
        if self._queue.qsize() >= self.max_batch:
            self._wake.set()

    def add_transition(self, item: TransitionItem) -> None:
        self._queue.put(item)
        self._wake.set()

    def add_batch(self, results: list[ResultItem], transitions: list[TransitionItem]) -> None:
        """One judged batch: one queue item, and a wake-up only if it holds a transition."""
        self._queue.put(_Batch(results, transitions))
        if transitions or self._queue.qsize() >= self.max_batch:
            self._wake.set()

    def forget(self, component_id: int) -> None:
        """The component was removed: its results still queued or buffered are dropped, not written."""
        self._queue.put(component_id)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Write everything queued (bounded by ``timeout_s``), including the current minute's rollups."""
        self._stop.set()
        if self._thread is None:  # never started (tests, one-shot tools): flush from this thread
            self._drain()
            self._flush(final=True)
            return
        self._queue.put(None)
        self._wake.set()
        self._thread.join(timeout_s)

    # -- the writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        next_flush = self.clock.monotonic() + self.flush_interval_s
        while True:
            self._wake.wait(max(0.0, next_flush - self.clock.monotonic()))
            self._wake.clear()  # before draining: a later item sets it again
            urgent = self._drain()
            now = self.clock.monotonic()
            if self._stop.is_set():
                self._flush(final=True)
                return
            if urgent or now >= next_flush or len(self._results) >= self.max_batch:
                ok = self._flush()
                delay = self.flush_interval_s if ok else self._retry_delay()
                next_flush = self.clock.monotonic() + delay

    def _drain(self) -> bool:
        """Move queued items into the pending buffers; True when something must be written now."""
        removed: set[int] = set()
        urgent = self._drain_into(removed)
        if removed:  # one pass (and one log line) for a bulk removal
            self._drop_removed(removed)
        return urgent

    def _drain_into(self, removed: set[int]) -> bool:
        urgent = False
        try:
            item = self._queue.get_nowait()
            while True:
                if item is None:
                    return True
                if isinstance(item, _Batch):
                    for result in item.results:
                        self._keep(result)
                    if item.transitions:
                        self._transitions.extend(item.transitions)
                        urgent = self.db_healthy
                elif isinstance(item, TransitionItem):
                    self._transitions.append(item)
                    urgent = self.db_healthy
                elif isinstance(item, int):
                    removed.add(item)
                else:
                    self._keep(item)
                if len(self._results) >= self.max_batch:
                    return True
                item = self._queue.get_nowait()
        except queue.Empty:
            return urgent

    def _keep(self, item: ResultItem) -> None:
        self._results.append(item)
        if len(self._results) > self.max_buffer:
            self._results.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.error("database unreachable: dropped %d check results so far (buffer %d)",
                          self.dropped, self.max_buffer)

    def _drop_removed(self, component_ids: set[int]) -> None:
        """Drop what is pending for removed components, counted and logged once per component."""
        before = len(self._results)
        self._results = deque(r for r in self._results if r.component_id not in component_ids)
        self._transitions = deque(t for t in self._transitions if t.component_id not in component_ids)
        self.dropped_removed += before - len(self._results)
        new = component_ids - self._removed
        if new:  # once per component, in one line however many were removed together
            shown = ", ".join(map(str, sorted(new)[:10])) + (" ..." if len(new) > 10 else "")
            log.info("%d components removed, pending results dropped (%d so far) component_id=%s",
                     len(new), self.dropped_removed, shown)
        self._removed |= component_ids

    def _retry_delay(self) -> float:
        self._failures += 1
        return max(0.5, full_jitter_delay(self._failures, 1.0, RETRY_CAP_S, self._rng))

    def flush_now(self) -> bool:
        """Write pending items from the calling thread (tests and shutdown); True when written."""
        self._drain()
        return self._flush()

    def _flush(self, final: bool = False) -> bool:
        """Write one batch. Rollups count only committed results, so a failed write needs no undo:
        minutes that closed are written with the next flush."""
        if final:
            self._pending_rollups += self._rollups.closed(self.clock.now(), everything=True)
        if not self._results and not self._transitions and not self._pending_rollups:
            return True
        results = [self._results.popleft() for _ in range(min(len(self._results), self.max_batch * 10))]
        transitions = list(self._transitions)
        started = self.clock.monotonic()
        try:
            try:
                events = self._write(results, transitions, self._pending_rollups)
            except IntegrityError:
                # A component was deleted since its results were judged (foreign key): drop those, once.
                results, transitions = self._without_removed(results, transitions)
                events = self._write(results, transitions, self._pending_rollups)
        except Exception as exc:  # the database is away: keep everything and retry later
            self._results.extendleft(reversed(results))
            if self.db_healthy:
                log.error("database write failed, buffering: %s", str(exc).splitlines()[0])
            self.db_healthy = False
            return False
        self._pending_rollups = []
        for _ in range(min(len(transitions), len(self._transitions))):
            self._transitions.popleft()
        for r in results:
            if r.reliable:
                self._rollups.add(r.component_id, r.result.checked_at, r.result.ok, r.result.latency_ms)
        self._pending_rollups = self._rollups.closed(self.clock.now())
        self.written += len(results)
        self.stats.observe_batch(results, write_s=self.clock.monotonic() - started)
        if not self.db_healthy:
            log.warning("database reachable again: wrote %d buffered results, %d dropped in total",
                        len(results), self.dropped)
        self.db_healthy = True
        self._failures = 0
        for event in events:
            log.info("incident %s incident=%d component=%s reason=%s", event.kind, event.incident_id,
                     event.component_name, event.reason)
        if final and (self._pending_rollups or len(self._rollups)):
            return self._flush(final=True)  # the minute in progress, now that its results are counted
        return True

    def _without_removed(self, results: list[ResultItem], transitions: list[TransitionItem],
                         ) -> tuple[list[ResultItem], list[TransitionItem]]:
        ids = {r.component_id for r in results} | {t.component_id for t in transitions}
        with self.db.read() as session:
            alive = set(session.scalars(select(Component.id).where(Component.id.in_(ids))))
        gone = ids - alive
        self._transitions = deque(t for t in self._transitions if t.component_id not in gone)
        self._drop_removed(gone)
        kept = [r for r in results if r.component_id not in gone]
        self.dropped_removed += len(results) - len(kept)
        self._rollups.forget(gone)
        self._pending_rollups = [row for row in self._pending_rollups if row["component_id"] not in gone]
        return kept, [t for t in transitions if t.component_id not in gone]

    def _write(self, results: list[ResultItem], transitions: list[TransitionItem],
               rollups: list[dict[str, Any]]) -> list[incidents.IncidentEvent]:
        events: list[incidents.IncidentEvent] = []
        with self.db.write() as session:
            conn = session.connection()
            if results:
                conn.execute(insert(CheckResultRow), [_result_row(r) for r in results])
                conn.execute(_LIVE_UPDATE, _live_rows(results))
            if transitions:
                conn.execute(insert(StateTransition), [
                    {"component_id": t.component_id, "at": t.at, "from_state": t.from_state.value,
                     "to_state": t.to_state.value, "reason": t.reason} for t in transitions])
                conn.execute(_STATE_UPDATE, [{"cid": t.component_id, "st": t.to_state.value, "since": t.at,
                                              "why": _state_reason(t)} for t in transitions])
            for t in transitions:
                event = incidents.on_transition(
                    session, component_id=t.component_id, component_name=t.component_name,
                    from_state=t.from_state, to_state=t.to_state, at=t.at, reason=t.reason,
                    flap_episode=t.flap_episode, reopen_window_s=self.reopen_window_s)
                if event is not None:
                    events.append(event)
            if rollups:
                upsert_rollups(conn, rollups)
        return events


def _result_row(item: ResultItem) -> dict[str, Any]:
    r = item.result
    return {"component_id": item.component_id, "checked_at": r.checked_at, "ok": r.ok, "reliable": item.reliable,
            "latency_ms": r.latency_ms, "lateness_ms": item.lateness_ms, "status_code": r.status_code,
            "error": r.error}


_LIVE_UPDATE = (
    update(Component)
    .where(Component.id == bindparam("cid"))
    .values(last_check_at=bindparam("at"), last_latency_ms=bindparam("latency"), last_error=bindparam("err"),
            consecutive_failures=bindparam("cf"), consecutive_successes=bindparam("cs"),
            flap_episode=bindparam("fe"), checks_total=Component.checks_total + bindparam("n"),
            failures_total=Component.failures_total + bindparam("f"),
            # a verification probe has no due time: keep the scheduled one
            next_check_at=func.coalesce(bindparam("next", type_=UTCDateTime()), Component.next_check_at))
)
_STATE_UPDATE = (
    update(Component).where(Component.id == bindparam("cid"))
    .values(state=bindparam("st"), state_since=bindparam("since"), state_reason=bindparam("why"))
)
#: states whose transition reason is not kept in components.state_reason (nothing to explain)
_NO_REASON = frozenset({ComponentState.UP, ComponentState.UNKNOWN})


def _state_reason(t: TransitionItem) -> str | None:
    """Why the component is in its state (degraded, down...), shown beside it; cleared when UP again."""
    return None if t.to_state in _NO_REASON else t.reason


def _live_rows(results: list[ResultItem]) -> list[dict[str, Any]]:
    """One row per component: its latest result, plus how many checks and failures this batch adds."""
    latest: dict[int, dict[str, Any]] = {}
    for item in results:
        row = latest.get(item.component_id)
        n, f = (row["n"], row["f"]) if row else (0, 0)
        latest[item.component_id] = {
            "cid": item.component_id, "at": item.result.checked_at, "latency": item.result.latency_ms,
            "err": item.result.error, "cf": item.live.consecutive_failures, "cs": item.live.consecutive_successes,
            "fe": item.live.flap_episode, "n": n + 1, "f": f + (0 if item.result.ok else 1),
            "next": item.live.next_check_at if item.live.next_check_at is not None else row and row["next"],
        }
    return list(latest.values())


@dataclass(frozen=True, slots=True)
class _Batch:
    results: list[ResultItem]
    transitions: list[TransitionItem]
