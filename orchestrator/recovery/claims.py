"""Run ownership: the lease saying which process works on an incident now (the one owner of it).

A lease is ``(run_owner, run_epoch, run_expires_at)`` on the incident row, its expiry judged on the
DATABASE clock (``now()`` on PostgreSQL, ``strftime('now')`` on SQLite), so processes on hosts whose
clocks disagree still agree on who holds it. :func:`claim` is a compare-and-set on the epoch it saw
and on the lease being free; the epoch grows with every claim, so a write fenced with
:func:`fence` (owner and epoch) fails once anyone else has taken the incident over. The owner renews
its leases while it works (:func:`renew`) and gives them back when its run ends (:func:`release`).
A lease is free when nobody holds it, when it expired (its owner died, lost the database or hung), or
when its owner is a daemon that stopped — or any other daemon, for the one daemon holding the
instance lock (``exclusive``): only one daemon runs per database, so every other one is dead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from orchestrator.core.errors import LeaseLost
from orchestrator.db.engine import Database, rows_changed
from orchestrator.db.models import DaemonInstance, Incident

#: Seconds a lease lasts without renewal: an incident whose owner vanished waits at most this long.
LEASE_S = 10.0
#: SQLite keeps datetimes as text with microseconds; strftime('%f') gives milliseconds.
_SQLITE_NOW = "%Y-%m-%d %H:%M:%f"


@dataclass(frozen=True)
class Claim:
    """This process holds the run lease of ``incident_id`` at ``epoch``."""

    incident_id: int
    owner: str
    epoch: int
    previous_owner: str | None  # whose lease was taken over (None: it was free and released)
    status: str  # the incident's status when claimed


def db_now(db: Database, plus_s: float = 0.0) -> ColumnElement[Any]:
    """The database's own current time (plus ``plus_s``), in the form the column stores."""
    if db.is_sqlite:
        return func.strftime(_SQLITE_NOW, "now", f"{plus_s:+.3f} seconds").concat("000")
    return func.now() + timedelta(seconds=plus_s) if plus_s else func.now()


def lease_free(db: Database, me: str, *, exclusive: bool) -> ColumnElement[bool]:
    """SQL: nobody holds the incident's lease, it expired, or its holder is a daemon known dead."""
    dead = select(DaemonInstance.id).where(DaemonInstance.id != me)
    if not exclusive:
        dead = dead.where(DaemonInstance.stopped_at.is_not(None))
    return or_(Incident.run_owner.is_(None), Incident.run_expires_at < db_now(db),
               and_(Incident.run_owner != me, Incident.run_owner.in_(dead)))


def claim(db: Database, incident_id: int, owner: str, *, lease_s: float = LEASE_S,
          exclusive: bool = False) -> Claim | None:
    """Take the incident's run lease if it is free; the Claim, or None if someone holds it."""
    with db.write() as session:
        seen = session.execute(select(Incident.status, Incident.run_owner, Incident.run_epoch)
                               .where(Incident.id == incident_id)).one_or_none()
        if seen is None:
            return None
        stmt = (update(Incident)
                .where(Incident.id == incident_id, Incident.run_epoch == seen.run_epoch,
                       lease_free(db, owner, exclusive=exclusive))
                .values(run_owner=owner, run_epoch=seen.run_epoch + 1, run_expires_at=db_now(db, lease_s))
                .execution_options(synchronize_session=False))
        if rows_changed(session.execute(stmt)) != 1:
            return None
    return Claim(incident_id, owner, seen.run_epoch + 1, seen.run_owner, seen.status)


def _ours(claim_: Claim) -> ColumnElement[bool]:
    return and_(Incident.id == claim_.incident_id, Incident.run_owner == claim_.owner,
                Incident.run_epoch == claim_.epoch)


def fence(session: Session, db: Database, claim_: Claim, lease_s: float = LEASE_S) -> None:
    """In the caller's transaction: renew the lease, or raise LeaseLost if it is no longer ours. The
    UPDATE locks the row, so a takeover waits for this transaction and then sees what it wrote."""
    stmt = (update(Incident).where(_ours(claim_)).values(run_expires_at=db_now(db, lease_s))
            .execution_options(synchronize_session=False))
    if rows_changed(session.execute(stmt)) != 1:
        raise LeaseLost(f"incident {claim_.incident_id}: run lease epoch {claim_.epoch} is no longer ours")


def renew(db: Database, claims: Mapping[int, Claim], lease_s: float = LEASE_S) -> set[int]:
    """Extend every lease in ``claims`` in one transaction; the incident ids no longer ours."""
    if not claims:
        return set()
    lost: set[int] = set()
    with db.write() as session:
        for claim_ in claims.values():
            stmt = (update(Incident).where(_ours(claim_)).values(run_expires_at=db_now(db, lease_s))
                    .execution_options(synchronize_session=False))
            if rows_changed(session.execute(stmt)) != 1:
                lost.add(claim_.incident_id)
    return lost


def release(session: Session, claim_: Claim, **values: Any) -> bool:
    """In the caller's transaction: give the lease back, setting ``values`` too; False if not ours."""
    stmt = (update(Incident).where(_ours(claim_))
            .values(run_owner=None, run_expires_at=None, **values)
            .execution_options(synchronize_session=False))
    return rows_changed(session.execute(stmt)) == 1
