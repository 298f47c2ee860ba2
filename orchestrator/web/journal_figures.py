"""The recovery journal's figures for ``/metrics``: actions by strategy and outcome, action → verified.

Both are aggregates over every executed journal row, a scan that grows with history (100,000 rows:
100-300 ms), while the journal changes only when a recovery step starts or finishes. So they are
recomputed only when the journal's fingerprint changed: per status, how many rows and their lowest and
highest id, read from ix_recovery_journal_status alone. A row's figures change only with its status
(journal.finish writes status, times and verification together), rows are only added with a higher id
or deleted (retention), and a row's status only moves forward, so every change moves the fingerprint.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from orchestrator.core.states import AttemptStatus
from orchestrator.db.models import JournalEntry
from orchestrator.history.stats import Histogram

#: action → verified buckets, seconds
VERIFIED_BUCKETS_S = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclass(frozen=True)
class JournalFigures:
    """Executed attempts by (strategy, status), and how long verified actions took."""

    actions: tuple[tuple[str, str, int], ...]
    verified: Histogram


def fingerprint(session: Session) -> tuple:
    """Rows per status with their id range: changes whenever a row is added, finished or deleted."""
    stmt = (select(JournalEntry.status, func.count(), func.min(JournalEntry.id), func.max(JournalEntry.id))
            .group_by(JournalEntry.status))
    return tuple(sorted(tuple(row) for row in session.execute(stmt)))


def journal_figures(session: Session) -> JournalFigures:
    """Both figures, computed from every row (two aggregate statements)."""
    actions = session.execute(select(JournalEntry.strategy, JournalEntry.status, func.count())
                              .where(JournalEntry.executed.is_(True))
                              .group_by(JournalEntry.strategy, JournalEntry.status)
                              .order_by(JournalEntry.strategy, JournalEntry.status)).all()
    return JournalFigures(tuple((s, status, int(n)) for s, status, n in actions), verified_histogram(session))


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


class JournalFiguresCache:
    """:func:`journal_figures`, recomputed only when the :func:`fingerprint` moved (one per web app)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._figures: JournalFigures | None = None

    def read(self, session: Session) -> JournalFigures:
        key = fingerprint(session)
        with self._lock:
            if key == self._key and self._figures is not None:
                return self._figures
        figures = journal_figures(session)  # outside the lock: a concurrent scrape may compute it too
        with self._lock:
            self._key, self._figures = key, figures
        return figures
