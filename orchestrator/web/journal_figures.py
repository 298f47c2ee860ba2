"""The recovery journal's figures for ``/metrics``: actions by strategy and outcome, action → verified.

Actions are counted by their final outcome only: a row still ``pending`` or ``running`` is not counted
(it is the ``running`` gauge), and :func:`orchestrator.recovery.journal.finish` moves a row out of
``running`` once and never again, so each count only grows: the counter never goes backwards (a row
counted under ``running`` and later under ``succeeded`` made ``running`` drop from 1 to absent).

Both are aggregates over every executed journal row, a scan that grows with history (100,000 rows:
100-300 ms), while the journal changes only when a recovery step starts or finishes. So they are
recomputed only when the journal's fingerprint changed: per status, how many rows and their lowest and
highest id, read from ix_recovery_journal_status alone. A row's figures change only with its status
(journal.finish writes status, times and verification together), rows are only added with a higher id
or deleted (retention), and a row's status only moves forward, so every change moves the fingerprint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from orchestrator.core.states import AttemptStatus
from orchestrator.db.models import JournalEntry
from orchestrator.history.stats import Histogram

T = TypeVar("T")

#: action → verified buckets, seconds
VERIFIED_BUCKETS_S = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: statuses of an attempt not finished yet: never in the counter, whose counts must only grow
UNFINISHED = (AttemptStatus.PENDING.value, AttemptStatus.RUNNING.value)


@dataclass(frozen=True)
class JournalFigures:
    """Finished executed attempts by (strategy, status), how long verified actions took, and the
    attempts running now by strategy."""

    actions: tuple[tuple[str, str, int], ...]
    verified: Histogram
    running: tuple[tuple[str, int], ...] = ()


def fingerprint(session: Session) -> tuple:
    """Rows per status with their id range: changes whenever a row is added, finished or deleted."""
    stmt = (select(JournalEntry.status, func.count(), func.min(JournalEntry.id), func.max(JournalEntry.id))
            .group_by(JournalEntry.status))
    return tuple(sorted(tuple(row) for row in session.execute(stmt)))


def journal_figures(session: Session) -> JournalFigures:
    """The figures, computed from every row (three aggregate statements)."""
    actions = session.execute(select(JournalEntry.strategy, JournalEntry.status, func.count())
                              .where(JournalEntry.executed.is_(True), JournalEntry.status.not_in(UNFINISHED))
                              .group_by(JournalEntry.strategy, JournalEntry.status)
                              .order_by(JournalEntry.strategy, JournalEntry.status)).all()
    running = session.execute(select(JournalEntry.strategy, func.count())
                              .where(JournalEntry.status == AttemptStatus.RUNNING.value)
                              .group_by(JournalEntry.strategy).order_by(JournalEntry.strategy)).all()
    return JournalFigures(tuple((s, status, int(n)) for s, status, n in actions), verified_histogram(session),
                          tuple((s, int(n)) for s, n in running))


def verified_histogram(session: Session) -> Histogram:
    """Bucket counts of start → finish of verified actions, computed in one aggregate statement."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        seconds = (func.julianday(JournalEntry.finished_at) - func.julianday(JournalEntry.started_at)) * 86400.0
    else:
        seconds = func.extract("epoch", JournalEntry.finished_at - JournalEntry.started_at)
    columns = [func.count(), func.coalesce(func.sum(seconds), 0.0)]
    columns += [func.coalesce(func.sum(case((seconds <= b, 1), else_=0)), 0) for b in VERIFIED_BUCKETS_S]
    stmt = select(*columns).where(JournalEntry.executed.is_(True), JournalEntry.status == AttemptStatus.SUCCEEDED.value,
                                  JournalEntry.verification["passed"].as_boolean().is_(True),
                                  JournalEntry.started_at.is_not(None), JournalEntry.finished_at.is_not(None))
    n, total, *cumulative = session.execute(stmt).one()
    counts, previous = [], 0
    for running in [*cumulative, n]:
        counts.append(int(running) - previous)
        previous = int(running)
    return Histogram(VERIFIED_BUCKETS_S, counts, float(total or 0.0), int(n))


class FingerprintCache(Generic[T]):
    """``compute(session)``, recomputed only when ``fingerprint(session)`` moved (one per web app).

    Invariant it must never break: what it returns was computed after the rows that this call's
    fingerprint saw were there (a hit means the same fingerprint, so nothing was added or removed since
    the stored figures were computed): a counter built on it never lags behind the rows it counts.
    """

    def __init__(self, fingerprint: Callable[[Session], tuple], compute: Callable[[Session], T]) -> None:
        self._fingerprint, self._compute = fingerprint, compute
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._value: T | None = None

    def read(self, session: Session) -> T:
        key = self._fingerprint(session)
        with self._lock:
            if key == self._key and self._value is not None:
                return self._value
        value = self._compute(session)  # outside the lock: a concurrent scrape may compute it too
        with self._lock:
            self._key, self._value = key, value
        return value


class JournalFiguresCache(FingerprintCache[JournalFigures]):
    """:func:`journal_figures`, recomputed only when the journal's :func:`fingerprint` moved."""

    def __init__(self) -> None:
        super().__init__(fingerprint, journal_figures)
