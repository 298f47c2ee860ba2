"""The PostgreSQL daemon lock is per schema: one daemon per orchestrator, not per server database."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from orchestrator.core.errors import InstanceLockedError
from orchestrator.db.engine import Database
from orchestrator.db.instance_lock import instance_lock
from tests.conftest import PG_URL, _pg_schema_url


@pytest.mark.pg
def test_two_schemas_of_one_database_lock_separately(pg_schema_url: str) -> None:
    other = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{other}"')
    first, second, same = Database(pg_schema_url), Database(_pg_schema_url(other)), Database(pg_schema_url)
    locks = [instance_lock(first), instance_lock(second)]
    try:
        for lock in locks:
            lock.acquire()
        with pytest.raises(InstanceLockedError):
            instance_lock(same).acquire()
    finally:
        for lock in locks:
            lock.release()
        for db in (first, second, same):
            db.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{other}" CASCADE')
        admin.dispose()
