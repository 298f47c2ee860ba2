"""The single writer: batches, transitions with incidents, rollups, and a real database outage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.core.check_result import CheckResult
from orchestrator.core.clock import FakeClock
from orchestrator.core.states import ComponentState as S
from orchestrator.db.engine import Database
from orchestrator.db.models import CheckResultRow, CheckRollup, Incident, IncidentEventRow, StateTransition
from orchestrator.history.drops import WRITES_FAILING_SHOWN_S
from orchestrator.history.recorder import LiveState, Recorder, ResultItem, TransitionItem
from tests.servers import wait_for
from tests.tcp_proxy import TcpProxy

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _component(db: Database, name: str = "api") -> int:
    Registry(db).add(ComponentSpec(name=name, url="http://127.0.0.1:9/"))
    with db.read() as session:
        return Registry(db).get_row(session, name).id


def _result(cid: int, at: datetime, ok: bool = True, latency: float = 5.0) -> ResultItem:
    live = LiveState(S.UP, at, 0 if ok else 1, 1 if ok else 0, 0)
    return ResultItem(cid, CheckResult(ok=ok, latency_ms=latency, checked_at=at, error=None if ok else "boom"),
                      1.0, True, live)


def _proxied(pg_url: str) -> tuple[Database, TcpProxy]:
    """A migrated database reached through a TCP proxy the test can cut."""
    from orchestrator.db.migrate import ensure_schema

    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname, parts.port or 5432)
    db = Database(urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port or 5432}", f":{proxy.port}"))))
    ensure_schema(db)
    return db, proxy


def _count(db: Database, model) -> int:
    with db.read() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


def test_results_and_live_state_are_written_in_one_batch(db: Database) -> None:
    cid = _component(db)
    rec = Recorder(db)
    for i in range(50):
        rec.add_result(_result(cid, T0 + timedelta(seconds=i), ok=i % 10 != 0))
    assert rec.flush_now()
    assert _count(db, CheckResultRow) == 50
    with db.read() as session:
        row = Registry(db).get_row(session, "api")
        assert (row.checks_total, row.failures_total) == (50, 5)
        assert row.last_check_at == T0 + timedelta(seconds=49)


def test_transition_opens_incident_then_resolves_self(db: Database) -> None:
    cid = _component(db)
    rec = Recorder(db)
    rec.add_transition(TransitionItem(cid, "api", S.UP, S.DOWN, T0, "3 consecutive failures", 0))
    rec.flush_now()
    rec.add_transition(TransitionItem(cid, "api", S.DOWN, S.UP, T0 + timedelta(seconds=30), "2 successes", 0))
    rec.flush_now()
    with db.read() as session:
        incident = session.scalars(sa.select(Incident)).one()
        assert (incident.status, incident.resolution) == ("resolved", "self")
        assert [t.to_state for t in session.scalars(sa.select(StateTransition).order_by(StateTransition.id))] == [
            "down", "up"]
        # the events are rows written with the change, for the notifier and the recovery loop
        assert [e.kind for e in session.scalars(sa.select(IncidentEventRow).order_by(IncidentEventRow.id))] == [
            "opened", "resolved"]
    # failing again after it held UP is a new incident, never a merge into the old one
    rec.add_transition(TransitionItem(cid, "api", S.UP, S.DOWN, T0 + timedelta(seconds=60), "again", 0))
    rec.flush_now()
    assert _count(db, Incident) == 2


def test_closed_minutes_become_rollups(db: Database) -> None:
    cid = _component(db)
    rec = Recorder(db)
    for i, latency in enumerate([1, 2, 3, 4, 100]):
        rec.add_result(_result(cid, T0 + timedelta(seconds=i), ok=i != 4, latency=latency))
    rec.flush_now()
    rec.stop()  # the final flush writes the minute in progress
    with db.read() as session:
        rollup = session.scalars(sa.select(CheckRollup)).one()
    assert (rollup.checks, rollup.failures, rollup.latency_max_ms, rollup.latency_p50_ms) == (5, 1, 100, 3)


@pytest.mark.pg
def test_database_outage_buffers_retries_and_counts_drops(pg_schema_url: str) -> None:
    """A real outage: the recorder talks to PostgreSQL through a proxy that the test cuts."""
    db, proxy = _proxied(pg_schema_url)
    cid = _component(db)
    rec = Recorder(db, max_buffer=50)
    for i in range(30):
        rec.add_result(_result(cid, T0 + timedelta(seconds=i)))
    assert rec.flush_now()

    proxy.cut()
    for i in range(30, 130):
        rec.add_result(_result(cid, T0 + timedelta(seconds=i)))
    rec.add_transition(TransitionItem(cid, "api", S.UP, S.DOWN, T0 + timedelta(seconds=131), "down", 0))
    assert not rec.flush_now()
    assert not rec.db_healthy
    assert rec.dropped == 50  # 100 results into a buffer of 50: the oldest 50 are dropped, and counted

    proxy.restore()
    assert rec.flush_now()
    assert rec.db_healthy
    assert _count(db, CheckResultRow) == 80
    assert _count(db, Incident) == 1  # the transition was kept, never dropped
    db.dispose()
    proxy.cut()


# -- poison isolation, forget, stop (invariant 4: nothing lost, nothing held back, nothing silent) --------


def test_a_removed_components_open_minute_never_blocks_later_writes(db: Database) -> None:
    """Regression (issue 14, defect 1): the per-minute rollup of a component removed while DOWN stayed
    pending after forget(); when its minute closed, its foreign key refused every later batch, so no
    result, transition or incident was written again."""
    clock = FakeClock(T0)
    keep, gone = _component(db, "keep"), _component(db, "downone")
    rec = Recorder(db, clock=clock)
    clock.advance(10)
    rec.add_result(_result(keep, clock.now()))
    rec.add_result(_result(gone, clock.now(), ok=False))
    assert rec.flush_now()  # the minute is open: both components have a rollup bucket in memory
    Registry(db).remove("downone")
    rec.forget(gone)
    clock.advance(60)  # the minute closes
    rec.add_result(_result(keep, clock.now()))
    assert rec.flush_now()
    rec.add_transition(TransitionItem(keep, "keep", S.UP, S.DOWN, clock.now(), "3 consecutive failures", 0))
    assert rec.flush_now() and rec.db_healthy
    assert _count(db, Incident) == 1
    assert _count(db, CheckResultRow) == 2
    assert rec.drops.get("rollups_removed") == 1


def test_a_removed_component_not_forgotten_is_dropped_as_removed(db: Database) -> None:
    """The judge's forget() raced with a batch: the foreign key tells, and its rows (rollups too) go."""
    clock = FakeClock(T0)
    keep, gone = _component(db, "keep"), _component(db, "downone")
    rec = Recorder(db, clock=clock)
    rec.add_result(_result(gone, clock.now(), ok=False))
    assert rec.flush_now()
    Registry(db).remove("downone")
    clock.advance(60)
    rec.add_result(_result(keep, clock.now()))
    rec.add_result(_result(gone, clock.now(), ok=False))
    assert rec.flush_now()
    rec.add_transition(TransitionItem(keep, "keep", S.UP, S.DOWN, clock.now(), "down", 0))
    assert rec.flush_now()
    assert _count(db, Incident) == 1
    drops = rec.drops.snapshot()
    assert (drops["results_removed"], drops["rollups_removed"]) == (1, 1)


def test_a_refused_row_is_isolated_dropped_counted_and_logged(db: Database, caplog) -> None:
    """One row the database refuses (here a naive time, refused by the column type) is bisected out;
    every other row of its batch, and the transition with it, is written."""
    cid = _component(db)
    rec = Recorder(db)
    for i in range(20):
        at = T0 + timedelta(seconds=i)
        rec.add_result(_result(cid, at.replace(tzinfo=None) if i == 13 else at))
    rec.add_transition(TransitionItem(cid, "api", S.UP, S.DOWN, T0 + timedelta(seconds=21), "down", 0))
    with caplog.at_level("ERROR", logger="orchestrator.history.recorder"):
        assert rec.flush_now()
    assert rec.db_healthy
    assert _count(db, CheckResultRow) == 19
    assert _count(db, Incident) == 1
    assert rec.drops.get("results_refused") == 1
    refused = [r.getMessage() for r in caplog.records if "refused one row" in r.getMessage()]
    assert len(refused) == 1 and "results_refused=1" in refused[0] and "12:00:13" in refused[0]
    rec.add_result(_result(cid, T0 + timedelta(seconds=30)))
    assert rec.flush_now() and _count(db, CheckResultRow) == 20  # nothing held back afterwards


def test_forget_clears_every_pending_structure(db: Database) -> None:
    clock = FakeClock(T0)
    cid = _component(db)
    rec = Recorder(db, clock=clock)
    rec.add_result(_result(cid, T0))
    assert rec.flush_now()  # an open rollup minute
    rec.add_result(_result(cid, T0 + timedelta(seconds=1)))
    rec.add_transition(TransitionItem(cid, "api", S.UP, S.DOWN, T0 + timedelta(seconds=1), "down", 0))
    rec.forget(cid)
    rec._drain()
    assert (len(rec._results), len(rec._transitions), len(rec._rollups), rec._pending_rollups) == (0, 0, 0, [])
    drops = rec.drops.snapshot()
    assert (drops["results_removed"], drops["transitions_removed"], drops["rollups_removed"]) == (1, 1, 1)


@pytest.mark.pg
def test_stop_counts_what_it_could_not_write_and_failures_show_after_10s(pg_schema_url: str, caplog) -> None:
    """Before: stop() with the database away discarded the buffer and the log said dropped=0."""
    db, proxy = _proxied(pg_schema_url)
    cid = _component(db)
    clock = FakeClock(T0)
    rec = Recorder(db, clock=clock)
    proxy.cut()
    for i in range(7):
        rec.add_result(_result(cid, T0 + timedelta(seconds=i)))
    rec.add_transition(TransitionItem(cid, "api", S.UP, S.DOWN, T0 + timedelta(seconds=8), "down", 0))
    assert not rec.flush_now()
    assert rec.writes_failing_s() == 0 and rec.failing_since == T0
    clock.advance(11)
    assert rec.writes_failing_s() >= WRITES_FAILING_SHOWN_S
    with caplog.at_level("ERROR", logger="orchestrator.history.recorder"):
        rec.stop(timeout_s=1.0)
    drops = rec.drops.snapshot()
    assert (drops["results_at_stop"], drops["transitions_at_stop"]) == (7, 1)
    assert rec.dropped == 7
    assert any("results_at_stop=7" in r.getMessage() for r in caplog.records)
    db.dispose()


@pytest.mark.pg
def test_every_result_is_written_or_counted_through_an_outage_and_a_stop(pg_schema_url: str) -> None:
    """I4's accounting: handed = written + every drop counter, with the writer thread running, a batch
    size far below the backlog, the database cut, and a stop while it is still cut."""
    db, proxy = _proxied(pg_schema_url)
    cid = _component(db)
    rec = Recorder(db, flush_interval_s=0.05, max_batch=10, max_buffer=50)
    rec.start()
    for i in range(20):
        rec.add_result(_result(cid, T0 + timedelta(seconds=i)))
    assert wait_for(lambda: rec.written == 20, 10)
    proxy.cut()
    for i in range(20, 320):
        rec.add_result(_result(cid, T0 + timedelta(seconds=i)))
    assert wait_for(lambda: not rec.db_healthy, 10)
    rec.stop(timeout_s=1.0)
    drops = rec.drops.snapshot()
    assert drops["results_buffer_full"] > 0 and drops["results_at_stop"] > 0
    assert rec.written + rec.dropped == 320
    db.dispose()


def test_after_a_long_outage_the_next_write_attempt_is_within_the_write_bound(db: Database) -> None:
    """Regression (the 30-minute soak, PostgreSQL seed 3: /metrics and the database disagreeing for
    10-11 s after a database cut): the retry backoff grew to 30 s, so a recorder that had failed through
    a long cut tried again up to 30 s after the database came back. Invariant 3 allows the flush
    interval + 2 s."""
    rec = Recorder(db)
    delays = [rec._retry_delay() for _ in range(40)]  # 40 failed writes in a row: a long cut
    assert max(delays) <= 2.0, max(delays)
    assert min(delays) >= 0.5  # and never a busy loop against a database that is away
