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


def test_the_recovery_loop_closes_an_incident_whose_component_row_is_gone(db: Database) -> None:
    """The safety net behind the removal's own close: an active incident left about no component (its
    row deleted under it, the foreign key set to NULL) is resolved ``removed`` by the recovery loop's
    next sweep, its running attempt settled; an alert's incident (about no component by nature) is kept."""
    from sqlalchemy import delete, update

    from orchestrator.core.states import IncidentKind
    from orchestrator.db.models import Component, JournalEntry
    from orchestrator.incidents import status
    from orchestrator.recovery.coordinator import RecoveryCoordinator
    from tests.test_recovery_support import ScriptedHealth, open_for, plan_set

    cid = add_component(db, "web", "http://127.0.0.1:9/health")
    iid = open_for(db, cid, "web")
    now = datetime.now(UTC)
    with db.write() as session:
        fleet = status.create(session, component_id=None, component_name=None, at=now, reason="an alert",
                              kind=IncidentKind.ALERT).id
        session.add(JournalEntry(incident_id=iid, step_index=0, attempt=1, strategy="restart", status="running",
                                 claimed_at=now, started_at=now, owner="gone:1:x"))
    with db.write() as session:  # what a removal that missed the incident leaves behind
        session.execute(update(Incident).where(Incident.id == iid).values(component_id=None))
        session.execute(delete(Component).where(Component.id == cid))
    coordinator = RecoveryCoordinator(db, plan_set({"p": {"steps": [{"strategy": "restart", "params": {"command": ["svcctl"]}}]}}), health=ScriptedHealth(), settle_s=0.0)
    def resolved() -> bool:
        with db.read() as session:
            return session.get(Incident, iid).status == "resolved"

    coordinator.start()
    try:
        poll(resolved, 10)
    finally:
        coordinator.shutdown(5)
    with db.read() as session:
        row = session.get(Incident, iid)
        assert (row.status, row.resolution) == ("resolved", "removed"), (row.status, row.resolution)
        assert session.scalar(select(JournalEntry.status).where(JournalEntry.incident_id == iid)) == "abandoned"
        assert session.get(Incident, fleet).status == "open"
