"""The single database writer: batched results, immediate transitions and incidents, never silent loss.

The judge hands over batches through a queue; nothing else writes results or the state mirror. One
thread writes; it sleeps until its next flush and is woken early only by a transition, a full batch
or ``stop()`` (a wake per result would cost a thread switch per check, more CPU than writing the row):

1. Results are collected and written every ``flush_interval_s`` or every ``max_batch`` rows, as one
   Core ``executemany`` (ORM objects cost 25–40 µs a row even batched), together with the latest live
   state of each component touched (counters, last result, ``next_check_at``).
2. A transition flushes at once, in the same transaction as its incident change; transitions and
   state-mirror updates are written in bulk, per-minute rollups upserted in bulk.
3. When the database is unreachable (an outage: connection, lock, disk) the batch is kept and retried
   with backoff. Results beyond ``max_buffer`` are dropped oldest-first and counted; transitions are
   never dropped for room. A spell of failed writes longer than ``WRITES_FAILING_SHOWN_S`` shows in
   ``status``, ``/readyz`` and the page (``writes_failing_s()``).
4. A batch the database *refuses* (anything but an outage: a foreign key, a bad value, a bug in one
   incident change) is never retried as a whole, since it would be refused forever and block every
   later write. First the rows of components removed meanwhile are dropped (``<kind>_removed``); the
   rest is bisected until each refused row stands alone, and those rows are dropped, each counted
   (``<kind>_refused``) and logged on one line.
5. ``forget()`` (the judge, when a component is removed) clears the component from every pending
   structure: queued and buffered results, transitions, open and closed rollup minutes.
6. ``stop()`` flushes what it can within its budget, retrying a failing database a few times, and
   counts what it could not write (``<kind>_at_stop``) in one error line.

Protects invariant 4 (nothing lost, docs/guarantees.md): a buffer or a retry must never hold back the
rows behind a poison row, and nothing leaves it uncounted — every drop is in a named counter of
orchestrator.history.drops, shown in ``status``, ``/metrics`` and the stop log line.

Incidents change in the same transaction as the transition that caused them (through
orchestrator.incidents.lifecycle); the recovery loop and the notifier find them in the database. The
callbacks given to :meth:`Recorder.on_transitions` run after every commit that wrote a transition (the
daemon wakes its recovery loop with it: a new incident is looked at as soon as it is committed).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from orchestrator.core.check_result import CheckResult, Ping
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import first_line
from orchestrator.core.states import ComponentState
from orchestrator.db.engine import Database
from orchestrator.db.models import CheckResultRow, Component, PushPing, StateTransition
from orchestrator.db.types import UTCDateTime
from orchestrator.history.drops import Drops, describe
from orchestrator.history.rollup import Rollups, upsert_rollups
from orchestrator.history.stats import RecorderStats
from orchestrator.incidents import lifecycle as incidents
from orchestrator.resilience.backoff import full_jitter_delay

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_S = 1.0
DEFAULT_MAX_BATCH = 2000
#: results kept in memory while the database is away (~200 bytes each: ~40 MB at the cap)
DEFAULT_MAX_BUFFER = 200_000
#: retry ceiling while the database is unreachable: one connection attempt every 2 s at most is nothing
#: to a database, and once it is back the rows land within invariant 3's bound (flush interval + 2 s).
#: A 30 s ceiling left the database (and every surface read from it) up to 30 s behind the live view
#: after an outage had ended (the 30-minute soak: /metrics and the database disagreeing 10-11 s).
RETRY_CAP_S = 2.0
#: waits between the final flush's attempts at stop, seconds (a blip passes; bounded by the stop budget)
STOP_RETRY_WAITS_S = (0.2, 0.5, 1.0, 1.0, 2.0)
#: seconds of the stop timeout left for joining the writer after its last attempt
STOP_MARGIN_S = 1.0


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
        #: what was not written, by kind and cause (orchestrator.history.drops.NAMES)
        self.drops = Drops()
        self.written = 0
        #: push monitors' pings written
        self.pings_written = 0
        self._removed: set[int] = set()
        self.db_healthy = True
        #: wall time of the first failed write of the current spell (None while writes succeed)
        self.failing_since: datetime | None = None
        self._failing_since_mono: float | None = None
        #: counters and histograms for /metrics, updated once per committed batch
        self.stats = RecorderStats()
        self._queue: queue.SimpleQueue[ResultItem | TransitionItem | _Batch | PingItem | int | None] = \
            queue.SimpleQueue()
        self._wake = threading.Event()  # something must be written before the next flush is due
        self._results: deque[ResultItem] = deque()
        self._transitions: deque[TransitionItem] = deque()
        self._pings: deque[PingItem] = deque()
        self._rollups = Rollups()
        self._pending_rollups: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._stop_budget_s = 5.0
        self._write_allowed = True
        self._thread: threading.Thread | None = None
        self._rng = random.Random()
        self._failures = 0
        self._on_transitions: list[Callable[[], None]] = []

    @property
    def dropped(self) -> int:
        """Check results not written, every cause together."""
        return self.drops.results()

    @property
    def dropped_removed(self) -> int:
        """Check results of components removed meanwhile, dropped knowingly."""
        return self.drops.get("results_removed")

    def writes_failing_s(self) -> float | None:
        """Seconds since the first failed write of the current spell; None while writes succeed."""
        since = self._failing_since_mono
        return None if since is None else max(0.0, self.clock.monotonic() - since)

    def on_transitions(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (on the writer thread: keep it short) after every commit that wrote at
        least one transition, so the incidents it opened, reopened or resolved are readable."""
        self._on_transitions.append(callback)

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

    def add_ping(self, item: PingItem) -> None:
        """A push monitor's ping: written at once (a ping is rare beside checks, and its latency to the
        database is what `orchestrator web` and the page show); buffered like results while the database
        is away, never dropped for room (the web's per-token rate limit bounds them)."""
        self._queue.put(item)
        self._wake.set()

    def forget(self, component_id: int) -> None:
        """The component was removed: everything pending for it (results, transitions, rollups, its
        state-mirror update) is dropped and counted, never written."""
        self._queue.put(component_id)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0, *, write: bool = True) -> None:
        """Write everything queued (bounded by ``timeout_s``), including the current minute's rollups;
        what could not be written is counted (``<kind>_at_stop``) and logged. ``write=False`` (the
        instance lock is lost: another daemon may own the database now) writes nothing more."""
        self._stop_budget_s = max(0.0, timeout_s - STOP_MARGIN_S)
        self._write_allowed = self._write_allowed and write
        self._stop.set()
        if self._thread is None:  # never started (tests, one-shot tools): flush from this thread
            self._drain()
            self._final_flush()
            return
        self._queue.put(None)
        self._wake.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():  # stuck in a database call: count what it still holds
            log.error("the writer did not finish within %.1fs", timeout_s)
            self._count_unwritten()

    def stop_writing(self) -> None:
        """Write nothing more from now on (the instance lock is lost); ``stop()`` later counts what is left."""
        self._write_allowed = False

    # -- the writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        next_flush = self.clock.monotonic() + self.flush_interval_s
        while True:
            self._wake.wait(max(0.0, next_flush - self.clock.monotonic()))
            self._wake.clear()  # before draining: a later item sets it again
            urgent = self._drain()
            now = self.clock.monotonic()
            if self._stop.is_set():
                self._drain()
                self._final_flush()
                return
            if self._write_allowed and (urgent or now >= next_flush):
                ok = self._flush()
                delay = self.flush_interval_s if ok else self._retry_delay()
                next_flush = self.clock.monotonic() + delay

    def _final_flush(self) -> None:
        """Flush, retrying a failing database a few times within the stop budget; count the rest."""
        waits = _stop_retry_waits(self._stop_budget_s)
        while not self._write_allowed or not self._flush(final=True):
            if not waits or not self._write_allowed:
                self._count_unwritten()
                return
            threading.Event().wait(waits.pop(0))  # a kernel wait (the stop budget is real time), never woken

    def _count_unwritten(self) -> None:
        results, transitions, pings = len(self._results), len(self._transitions), len(self._pings)
        rollups = len(self._pending_rollups) + len(self._rollups)
        self._results.clear()
        self._transitions.clear()
        self._pings.clear()
        self.drops.add("pings_at_stop", pings)
        self._pending_rollups = []
        self._rollups = Rollups()
        self.drops.add("results_at_stop", results)
        self.drops.add("transitions_at_stop", transitions)
        self.drops.add("rollups_at_stop", rollups)
        if results or transitions or rollups or pings:
            log.error("stopping with the database unwritable: results_at_stop=%d transitions_at_stop=%d "
                      "rollups_at_stop=%d pings_at_stop=%d not written", results, transitions, rollups, pings)

    def _drain(self) -> bool:
        """Move queued items into the pending buffers; True when something must be written now."""
        removed: set[int] = set()
        urgent = self._drain_into(removed)
        if removed:  # one pass (and one log line) for a bulk removal
            self._drop_removed(removed)
        return urgent

    def _drain_into(self, removed: set[int]) -> bool:
        """Everything queued, however much: a buffer of ``max_batch`` or more while the database is away
        must not leave the queue to grow past ``max_buffer`` uncounted (or be lost at stop)."""
        urgent = False
        try:
            item = self._queue.get_nowait()
            while True:
                if item is None:
                    urgent = True
                elif isinstance(item, _Batch):
                    for result in item.results:
                        self._keep(result)
                    if item.transitions:
                        self._transitions.extend(item.transitions)
                        urgent = urgent or self.db_healthy
                elif isinstance(item, TransitionItem):
                    self._transitions.append(item)
                    urgent = urgent or self.db_healthy
                elif isinstance(item, PingItem):
                    self._pings.append(item)
                    urgent = urgent or self.db_healthy
                elif isinstance(item, int):
                    removed.add(item)
                else:
                    self._keep(item)
                item = self._queue.get_nowait()
        except queue.Empty:
            # a full batch is urgent while the database takes writes; during an outage the retry backoff rules
            return urgent or (self.db_healthy and len(self._results) >= self.max_batch)

    def _keep(self, item: ResultItem) -> None:
        self._results.append(item)
        if len(self._results) > self.max_buffer:
            self._results.popleft()
            self.drops.add("results_buffer_full")
            n = self.drops.get("results_buffer_full")
            if n == 1 or n % 10_000 == 0:
                log.error("database unreachable: dropped %d check results so far (buffer %d) results_buffer_full=%d",
                          n, self.max_buffer, n)

    def _drop_removed(self, component_ids: set[int]) -> None:
        """Drop everything pending for removed components, counted, and logged once per component."""
        results, transitions = len(self._results), len(self._transitions)
        rollups = len(self._pending_rollups) + len(self._rollups)
        self._results = deque(r for r in self._results if r.component_id not in component_ids)
        self._transitions = deque(t for t in self._transitions if t.component_id not in component_ids)
        pings = len(self._pings)
        self._pings = deque(p for p in self._pings if p.component_id not in component_ids)
        self.drops.add("pings_removed", pings - len(self._pings))
        self._pending_rollups = [row for row in self._pending_rollups if row["component_id"] not in component_ids]
        self._rollups.forget(component_ids)
        self.drops.add("results_removed", results - len(self._results))
        self.drops.add("transitions_removed", transitions - len(self._transitions))
        self.drops.add("rollups_removed", rollups - len(self._pending_rollups) - len(self._rollups))
        new = component_ids - self._removed
        if new:  # once per component, in one line however many were removed together
            shown = ", ".join(map(str, sorted(new)[:10])) + (" ..." if len(new) > 10 else "")
            log.info("%d components removed, pending rows dropped (results_removed=%d so far) component_id=%s",
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
        """Write one batch; False (everything unwritten kept) when the database is away. Rollups count
        only committed results, so a failed write needs no undo: minutes that closed are written with
        the next flush."""
        if final:
            self._pending_rollups += self._rollups.closed(self.clock.now(), everything=True)
        if not self._results and not self._transitions and not self._pending_rollups and not self._pings:
            return True
        units: list[_Unit] = [("results", r) for r in
                              (self._results.popleft() for _ in range(min(len(self._results), self.max_batch * 10)))]
        units += [("transitions", t) for t in self._transitions]
        units += [("rollups", row) for row in self._pending_rollups]
        units += [("pings", p) for p in self._pings]
        self._pings.clear()
        self._transitions.clear()
        self._pending_rollups = []
        started = self.clock.monotonic()
        attempt = _Attempt(units)
        try:
            self._write_isolating(attempt)
        except _Outage as outage:  # what was committed before it stays committed, and is counted
            self._committed(attempt, started)
            self._put_back(attempt.unwritten())
            self._failing(outage.__cause__ or outage)
            return False
        self._recovered(self._committed(attempt, started))
        if final and (self._pending_rollups or len(self._rollups)):
            return self._flush(final=True)  # the minute in progress, now that its results are counted
        return True

    def _committed(self, attempt: _Attempt, started: float) -> int:
        """Account for the attempt's committed rows (rollups, counters, incident log lines); how many results."""
        committed = attempt.written("results")
        for r in committed:
            if r.reliable:
                self._rollups.add(r.component_id, r.result.checked_at, r.result.ok, r.result.latency_ms)
        self._pending_rollups += self._rollups.closed(self.clock.now())
        self.written += len(committed)
        if any(attempt.ok):  # the batch count is the web cache's version: any committed row moves it
            self.stats.observe_batch(committed, write_s=self.clock.monotonic() - started)
        for event in attempt.events:
            log.info("incident %s incident=%d component=%s reason=%s", event.kind, event.incident_id,
                     event.component_name, event.reason)
        if self._on_transitions and attempt.written("transitions"):
            for callback in self._on_transitions:
                try:
                    callback()
                except Exception:  # a listener's bug must not stop the writer
                    log.exception("transition listener failed")
        return len(committed)

    def _put_back(self, units: list[_Unit]) -> None:
        """Unwritten rows return to the front of their buffers, in their order."""
        self._results.extendleft(reversed([item for kind, item in units if kind == "results"]))
        self._transitions.extendleft(reversed([item for kind, item in units if kind == "transitions"]))
        self._pings.extendleft(reversed([item for kind, item in units if kind == "pings"]))
        self._pending_rollups = [item for kind, item in units if kind == "rollups"] + self._pending_rollups

    def _failing(self, exc: BaseException) -> None:
        if self._failing_since_mono is None:
            self._failing_since_mono = self.clock.monotonic()
            self.failing_since = self.clock.now()
            log.error("database write failed, buffering: %s", first_line(exc))
        self.db_healthy = False

    def _recovered(self, written: int) -> None:
        if self._failing_since_mono is not None:
            log.warning("database writable again after %.1fs: wrote %d buffered results, dropped=%d (%s)",
                        self.clock.monotonic() - self._failing_since_mono, written, self.dropped,
                        describe(self.drops.snapshot()))
        self._failing_since_mono = None
        self.failing_since = None
        self.db_healthy = True
        self._failures = 0

    def _write_isolating(self, attempt: _Attempt) -> None:
        """Write the attempt's rows; a refusal drops removed components' rows, then bisects to the refused ones.
        Raises _Outage (from the database's error) when the database is away; rows written before stay written."""
        try:
            self._write_span(attempt, 0, len(attempt.units))
            return
        except _Refused as refused:
            if isinstance(refused.__cause__, IntegrityError):
                self._skip_removed(attempt)
        self._bisect(attempt, 0, len(attempt.units))

    def _write_span(self, attempt: _Attempt, lo: int, hi: int) -> None:
        span = [u for i, u in enumerate(attempt.units[lo:hi], lo) if not attempt.done[i]]
        if not span:
            return
        try:
            attempt.events += self._write(*_split(span))
        except Exception as exc:
            if _is_outage(exc):
                raise _Outage() from exc
            raise _Refused() from exc
        for i in range(lo, hi):
            if not attempt.done[i]:
                attempt.done[i] = attempt.ok[i] = True

    def _bisect(self, attempt: _Attempt, lo: int, hi: int) -> None:
        try:
            self._write_span(attempt, lo, hi)
        except _Refused as refused:
            if hi - lo > 1:
                mid = (lo + hi) // 2
                self._bisect(attempt, lo, mid)
                self._bisect(attempt, mid, hi)
                return
            kind, item = attempt.units[lo]
            attempt.done[lo] = True
            self.drops.add(f"{kind}_refused")
            exc = refused.__cause__
            log.error("database refused one row, dropped: %s_refused=%d %s error=%s", kind,
                      self.drops.get(f"{kind}_refused"), _describe_unit(kind, item),
                      first_line(exc) if exc else "unknown")

    def _skip_removed(self, attempt: _Attempt) -> None:
        """Rows of components deleted since they were judged (a foreign key): dropped as removed, once."""
        ids = {_component_of(kind, item) for kind, item in attempt.units}
        try:
            with self.db.read() as session:
                alive = set(session.scalars(select(Component.id).where(Component.id.in_(ids))))
        except Exception as exc:
            if _is_outage(exc):
                raise _Outage() from exc
            raise
        gone = ids - alive
        if not gone:
            return
        for i, (kind, item) in enumerate(attempt.units):
            if _component_of(kind, item) in gone:
                attempt.done[i] = True
                self.drops.add(f"{kind}_removed")
        self._drop_removed(gone)

    def _write(self, results: list[ResultItem], transitions: list[TransitionItem],
               rollups: list[dict[str, Any]], pings: list[PingItem]) -> list[incidents.IncidentEvent]:
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
            if pings:
                conn.execute(insert(PushPing), [_ping_row(p) for p in pings])
        if pings:
            self.pings_written += len(pings)
        return events


#: one pending row: ("results", ResultItem) | ("transitions", TransitionItem) | ("rollups", dict)
#: | ("pings", PingItem)
_Unit = tuple[str, Any]
#: errors that mean the database is away (connection, lock, disk, read-only), not that it refuses a row
_OUTAGES = (OperationalError, InterfaceError, InternalError, DisconnectionError, PoolTimeoutError)


def _is_outage(exc: BaseException) -> bool:
    return isinstance(exc, _OUTAGES) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


class _Outage(Exception):
    """The database is away: keep what is unwritten and retry later."""


class _Refused(Exception):
    """The database refused this span of rows (its ``__cause__`` says why)."""


class _Attempt:
    """One flush's rows, and which of them are settled (written, or dropped and counted)."""

    def __init__(self, units: list[_Unit]) -> None:
        self.units = units
        self.done = [False] * len(units)
        self.ok = [False] * len(units)
        self.events: list[incidents.IncidentEvent] = []

    def unwritten(self) -> list[_Unit]:
        return [u for u, done in zip(self.units, self.done, strict=True) if not done]

    def written(self, kind: str) -> list[Any]:
        return [item for (k, item), ok in zip(self.units, self.ok, strict=True) if ok and k == kind]


def _split(units: list[_Unit]) -> tuple[list[ResultItem], list[TransitionItem], list[dict[str, Any]],
                                        list[PingItem]]:
    by_kind: dict[str, list[Any]] = {"results": [], "transitions": [], "rollups": [], "pings": []}
    for kind, item in units:
        by_kind[kind].append(item)
    return by_kind["results"], by_kind["transitions"], by_kind["rollups"], by_kind["pings"]


def _component_of(kind: str, item: Any) -> int:
    return item["component_id"] if kind == "rollups" else item.component_id


def _describe_unit(kind: str, item: Any) -> str:
    if kind == "results":
        return f"component_id={item.component_id} checked_at={item.result.checked_at.isoformat()}"
    if kind == "pings":
        return f"component_id={item.component_id} ping={item.ping.kind} at={item.ping.received_at.isoformat()}"
    if kind == "transitions":
        return (f"component={item.component_name} component_id={item.component_id} "
                f"{item.from_state.value}->{item.to_state.value} at={item.at.isoformat()}")
    return f"component_id={item['component_id']} minute={item['minute'].isoformat()}"


def _stop_retry_waits(budget_s: float) -> list[float]:
    """Waits between the final flush's attempts: short first (a blip), all within ``budget_s``."""
    waits, total = [], 0.0
    for wait in STOP_RETRY_WAITS_S:
        if total + wait > budget_s:
            break
        waits.append(wait)
        total += wait
    return waits


def _result_row(item: ResultItem) -> dict[str, Any]:
    r = item.result
    return {"component_id": item.component_id, "checked_at": r.checked_at, "ok": r.ok, "reliable": item.reliable,
            "latency_ms": r.latency_ms, "lateness_ms": item.lateness_ms, "status_code": r.status_code,
            "error": r.error, "tls_expires_at": r.tls_expires_at}


_LIVE_UPDATE = (
    update(Component)
    .where(Component.id == bindparam("cid"))
    .values(last_check_at=bindparam("at"), last_latency_ms=bindparam("latency"), last_error=bindparam("err"),
            consecutive_failures=bindparam("cf"), consecutive_successes=bindparam("cs"),
            flap_episode=bindparam("fe"), checks_total=Component.checks_total + bindparam("n"),
            failures_total=Component.failures_total + bindparam("f"),
            # a verification probe has no due time: keep the scheduled one
            next_check_at=func.coalesce(bindparam("next", type_=UTCDateTime()), Component.next_check_at),
            # a check that saw no certificate (refused, timed out) says nothing about it: keep the last
            tls_expires_at=func.coalesce(bindparam("tls", type_=UTCDateTime()), Component.tls_expires_at))
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
            "tls": item.result.tls_expires_at if item.result.tls_expires_at is not None else row and row["tls"],
        }
    return list(latest.values())


@dataclass(frozen=True, slots=True)
class PingItem:
    """A push monitor's ping to write; ``judged`` when this daemon's judge has it already (its own web
    server), so the daemon's poll of the table skips it (orchestrator.history.pings)."""

    ping: Ping
    judged: bool

    @property
    def component_id(self) -> int:
        return self.ping.component_id


def _ping_row(item: PingItem) -> dict[str, Any]:
    p = item.ping
    return {"component_id": p.component_id, "received_at": p.received_at, "kind": p.kind,
            "exit_status": p.exit_status, "duration_s": p.duration_s, "body": p.body, "judged": item.judged}


@dataclass(frozen=True, slots=True)
class _Batch:
    results: list[ResultItem]
    transitions: list[TransitionItem]
