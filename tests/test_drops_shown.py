"""What the recorder did not write, and a long spell of failed writes, show in `status` (invariant 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.db.engine import Database
from orchestrator.db.models import DaemonInstance


def test_status_shows_drops_by_cause_and_failing_writes(db_url: str, run_cli) -> None:
    run_cli("component", "list")  # the migrated copy of the template
    now = datetime.now(UTC)
    db = Database(db_url)
    with db.write() as session:
        session.add(DaemonInstance(id="h:1:abc", host="h", pid=1, version="t", started_at=now, heartbeat_at=now,
                                   dropped_results=3, drops={"results_refused": 1, "results_buffer_full": 2,
                                                             "transitions_refused": 1},
                                   writes_failing_since=now - timedelta(seconds=30)))
    db.dispose()
    out = run_cli("status").output
    assert "warning: database writes failing since" in out
    assert "not written: results_buffer_full=2 results_refused=1 transitions_refused=1" in out
    assert run_cli("status", "--json").exit_code == 0
