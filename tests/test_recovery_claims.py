"""Run leases on both databases: compare-and-set claims, expiry on the database clock, fencing, dead daemons."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from orchestrator.core.errors import LeaseLost
from orchestrator.db.models import DaemonInstance, Incident
from orchestrator.recovery import claims
from tests.daemon_helpers import poll
from tests.servers import LoopbackHTTPServer
from tests.test_recovery_support import add_component, open_for

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def iid(db) -> int:
    with LoopbackHTTPServer("ok") as server:
        cid = add_component(db, "web", server.url, plan=None)
    return open_for(db, cid, "web")


def test_one_claim_wins_and_the_epoch_grows(db, iid) -> None:
    first = claims.claim(db, iid, "a")
    assert first is not None and (first.epoch, first.previous_owner, first.status) == (1, None, "open")
    assert claims.claim(db, iid, "b") is None  # held: refused
    with db.write() as session:
        assert claims.release(session, first)
    second = claims.claim(db, iid, "b")
    assert second is not None and second.epoch == 2


def test_an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_off(db, iid) -> None:
    old = claims.claim(db, iid, "a", lease_s=0.2)
    new = poll(lambda: claims.claim(db, iid, "b"), 10)  # free once the database clock passes the expiry
    assert (new.previous_owner, new.epoch) == ("a", 2)
    with pytest.raises(LeaseLost), db.write() as session:
        claims.fence(session, db, old)
    assert claims.renew(db, {iid: old}) == {iid} and claims.renew(db, {iid: new}) == set()
    with db.write() as session:
        assert not claims.release(session, old)  # only the holder gives it back
        assert claims.release(session, new)


def test_the_expiry_is_judged_on_the_database_clock(db, iid) -> None:
    claim = claims.claim(db, iid, "a", lease_s=60)
    with db.read() as session:
        expires, db_now = session.execute(select(Incident.run_expires_at, claims.db_now(db))
                                          .where(Incident.id == iid)).one()
    if isinstance(db_now, str):  # SQLite returns its text form
        db_now = datetime.fromisoformat(db_now).replace(tzinfo=UTC)
    assert 55 < (expires - db_now).total_seconds() <= 60
    with db.write() as session:  # a lease that "expired" in the past by the database's clock is free
        session.execute(update(Incident).where(Incident.id == iid).values(run_expires_at=claims.db_now(db, -1)))
    assert claim is not None and claims.claim(db, iid, "b") is not None


def test_a_lease_of_a_dead_daemon_is_free_for_the_one_daemon_and_a_stopped_ones_for_everyone(db, iid) -> None:
    with db.write() as session:
        for name in ("old-daemon", "stopped-daemon"):
            session.add(DaemonInstance(id=name, host="h", pid=1, version="x", started_at=AT, heartbeat_at=AT,
                                       stopped_at=AT if name == "stopped-daemon" else None))
    assert claims.claim(db, iid, "old-daemon", lease_s=60) is not None
    assert claims.claim(db, iid, "cli") is None  # not exclusive: a live-looking daemon's lease stands
    taken = claims.claim(db, iid, "new-daemon", exclusive=True)  # holds the instance lock: the old one is dead
    assert taken is not None and taken.previous_owner == "old-daemon"
    with db.write() as session:
        session.execute(update(Incident).where(Incident.id == iid).values(run_owner="stopped-daemon"))
    assert claims.claim(db, iid, "cli") is not None
