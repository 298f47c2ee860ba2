"""Removing a component while the recorder is opening an incident for it closes that incident too
(issue 14, invariant 2): the 30-minute PostgreSQL soak found one left open with its component gone."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from orchestrator.db.models import Incident
from tests.daemon_helpers import poll
from tests.test_recovery_support import add_component


def test_an_incident_opened_while_its_component_is_removed_is_closed_as_removed(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: the recorder's insert and the removal cannot overlap")
    cid = add_component(db, "web", "http://127.0.0.1:9/health")
    now = datetime.now(UTC)
    with db.engine.connect() as opening:  # the recorder's transaction, not committed yet
        trans = opening.begin()
        iid = opening.execute(insert(Incident).values(
            component_id=cid, component_name="web", opened_at=now, updated_at=now, status="open",
            reason="2 consecutive failures").returning(Incident.id)).scalar_one()
        removed = threading.Thread(target=lambda: Registry(db, plan_names={"p"}).remove("web"))
        removed.start()
        # the removal is under way (it waits for the insert's lock on the component row); then the commit
        poll(lambda: removed.is_alive(), 5)
        removed.join(0.5)
        trans.commit()
    removed.join(30)
    assert not removed.is_alive()
    with db.read() as session:
        row = session.scalar(select(Incident).where(Incident.id == iid))
        assert (row.status, row.resolution) == ("resolved", "removed"), (row.status, row.resolution)
