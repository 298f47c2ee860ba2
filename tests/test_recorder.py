"""The single writer: batches, transitions with incidents, rollups, and a real database outage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.core.states import ComponentState as S
from orchestrator.db.engine import Database
from orchestrator.db.models import CheckResultRow, CheckRollup, Incident, IncidentEventRow, StateTransition
from orchestrator.health.result import CheckResult
from orchestrator.history.recorder import LiveState, Recorder, ResultItem, TransitionItem
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
    parts = urlsplit(pg_schema_url)
    proxy = TcpProxy(parts.hostname, parts.port or 5432)
    proxied = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port or 5432}", f":{proxy.port}")))
    db = Database(proxied)
    from orchestrator.db.migrate import ensure_schema

    ensure_schema(db)
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
