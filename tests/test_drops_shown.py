"""What the recorder did not write, and a long spell of failed writes, show in `status`, /readyz, /metrics
and the page (invariant 4: nothing lost uncounted, never silent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from orchestrator.db.engine import Database
from orchestrator.db.models import DaemonInstance
from tests.test_web_api import _app

DROPS = {"results_refused": 1, "results_buffer_full": 2, "transitions_refused": 1}


def _failing_daemon(db: Database, now: datetime) -> None:
    with db.write() as session:
        session.add(DaemonInstance(id="h:1:abc", host="h", pid=1, version="t", started_at=now, heartbeat_at=now,
                                   dropped_results=3, drops=DROPS, writes_failing_since=now - timedelta(seconds=30)))


def test_status_shows_drops_by_cause_and_failing_writes(db_url: str, run_cli) -> None:
    run_cli("component", "list")  # the migrated copy of the template
    db = Database(db_url)
    _failing_daemon(db, datetime.now(UTC))
    db.dispose()
    out = run_cli("status").output
    assert "warning: database writes failing since" in out
    assert "not written: results_buffer_full=2 results_refused=1 transitions_refused=1" in out
    assert run_cli("status", "--json").exit_code == 0


def test_readyz_metrics_and_page_show_them(db: Database) -> None:
    _failing_daemon(db, datetime.now(UTC))
    client = _app(db).test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database:writes"][0]["status"] == "fail"
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))}
    dropped = {(s.labels["kind"], s.labels["cause"]): s.value
               for s in families["orchestrator_recorder_dropped"].samples if s.name.endswith("_total")}
    assert dropped[("results", "refused")] == 1 and dropped[("transitions", "refused")] == 1
    assert dropped[("results", "at_stop")] == 0
    assert families["orchestrator_db_writes_failing_seconds"].samples[0].value >= 10
    page = client.get("/").get_data(as_text=True)
    assert "database writes failing for" in page and "results_refused=1" in page
