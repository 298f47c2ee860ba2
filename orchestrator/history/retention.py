"""Retention: raw results for days, per-minute rollups for about a year, transitions and incidents
forever. Deletes go in small chunks so a large backlog never holds the writer's lock for long."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from orchestrator.db.engine import Database
from orchestrator.db.models import CheckResultRow, CheckRollup, PushPing

log = logging.getLogger(__name__)

DEFAULT_RAW_RETENTION_S = 7 * 86400.0
DEFAULT_ROLLUP_RETENTION_S = 400 * 86400.0
CHUNK = 5000
#: per run at most this many chunks per table; the next run continues
MAX_CHUNKS = 40


def prune(db: Database, now: datetime, *, raw_s: float = DEFAULT_RAW_RETENTION_S,
          rollup_s: float = DEFAULT_ROLLUP_RETENTION_S) -> dict[str, int]:
    """Delete what is past retention; returns rows deleted per table."""
    deleted = {"check_results": 0, "check_rollups": 0, "push_pings": 0}
    raw_cutoff = now - timedelta(seconds=raw_s)
    for _ in range(MAX_CHUNKS):
        with db.write_conn() as conn:
            ids = select(CheckResultRow.id).where(CheckResultRow.checked_at < raw_cutoff).limit(CHUNK)
            n = conn.execute(delete(CheckResultRow).where(CheckResultRow.id.in_(ids))).rowcount
        deleted["check_results"] += n
        if n < CHUNK:
            break
    with db.write_conn() as conn:
        cutoff = now - timedelta(seconds=rollup_s)
        deleted["check_rollups"] = conn.execute(delete(CheckRollup).where(CheckRollup.minute < cutoff)).rowcount
        # pings are one per job run, and a monthly job's last success must outlive the raw results:
        # kept as long as the rollups
        deleted["push_pings"] = conn.execute(delete(PushPing).where(PushPing.received_at < cutoff)).rowcount
    if any(deleted.values()):
        log.info("retention pruned results=%d rollups=%d", deleted["check_results"], deleted["check_rollups"])
    return deleted
