"""Retention deletes what is past its window, in chunks, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from orchestrator.db.models import CheckResultRow, CheckRollup, Component, Incident, StateTransition
from orchestrator.history import retention

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_prune_keeps_recent_rows_and_everything_forever_kept(db: Database, monkeypatch) -> None:
    monkeypatch.setattr(retention, "CHUNK", 7)  # force several chunks
    Registry(db).add(ComponentSpec(name="api", url="http://127.0.0.1:9/"))
    with db.write() as session:
        cid = session.scalar(sa.select(Component.id))
        old, new = NOW - timedelta(days=8), NOW - timedelta(days=6)
        session.add_all([CheckResultRow(component_id=cid, checked_at=old + timedelta(seconds=i), ok=True,
                                        latency_ms=1.0) for i in range(30)])
        session.add_all([CheckResultRow(component_id=cid, checked_at=new + timedelta(seconds=i), ok=True,
                                        latency_ms=1.0) for i in range(5)])
        session.add_all([CheckRollup(component_id=cid, minute=NOW - timedelta(days=d), checks=1, failures=0)
                         for d in (10, 401)])
        session.add(StateTransition(component_id=cid, at=NOW - timedelta(days=900), from_state="up",
                                    to_state="down"))
        session.add(Incident(component_id=cid, component_name="api", opened_at=NOW - timedelta(days=900),
                             updated_at=NOW - timedelta(days=900)))
    deleted = retention.prune(db, NOW)
    assert deleted == {"check_results": 30, "check_rollups": 1, "push_pings": 0}
    with db.read() as session:
        count = lambda model: session.scalar(sa.select(sa.func.count()).select_from(model))  # noqa: E731
        assert (count(CheckResultRow), count(CheckRollup), count(StateTransition), count(Incident)) == (5, 1, 1, 1)
