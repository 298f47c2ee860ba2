"""Never silent (issue 14): a guard ends in an action or a person, a waiting incident says why and until
when, a manual recovery is no crash-loop cycle. Real daemons over loopback services; the restart command
is the fault rig's stub, which logs each run."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from orchestrator.web.app import create_app
from orchestrator.web.source import DatabaseSource
from tests.daemon_helpers import poll, running_daemon, scalar
from tests.fault_rig import RepairableServer, Stub, history, incidents, plan_file

FAST = {"interval": 0.2, "timeout": 0.1, "failure_threshold": 2, "success_threshold": 1}
#: a closed loopback port: deliveries fail, and each is still stored as a notifications row
DEAD_HOOK = "http://127.0.0.1:9/hook"


def _register(db: Database, url: str) -> int:
    Registry(db, plan_names={"p"}).add(ComponentSpec(name="svc", url=url, plan="p", **FAST))
    return scalar(db, "SELECT id FROM components WHERE name = 'svc'")


def _rig(tmp_path, limits: dict) -> tuple:
    """(the healthy flag, the restart stub, a one-step plan file with ``limits``): healthy to begin with."""
    flag = tmp_path / "healthy"
    flag.touch()
    stub = Stub(tmp_path, flag)
    return flag, stub, plan_file(tmp_path, stub, attempts=1, limits=limits)


def _with_notifications(path, **notifications) -> None:
    plans = json.loads(path.read_text())
    plans["notifications"] = {"webhooks": [{"url": DEAD_HOOK}], "group_window": "100ms", **notifications}
    path.write_text(json.dumps(plans))


def _crash_after_each_restart(server: RepairableServer, stub: Stub, stop: threading.Event) -> None:
    """The service dies shortly after each restart (a crash loop), until ``stop``."""
    seen = len(stub.actions())
    server.breaks()
    while not stop.is_set():
        if len(stub.actions()) > seen and server.healthy():
            seen = len(stub.actions())
            if stop.wait(0.3):
                return
            server.breaks()
        stop.wait(0.05)


def test_a_crash_loop_held_as_flapping_is_notified_and_escalates_within_its_bound(db, db_url, tmp_path) -> None:
    """Regression (issue 14, defect 4): a service dying seconds after each restart was blocked as
    "flapping" and then left dead for ~10 minutes with no escalation, and `blocked` notified nobody.
    Here: two restarts, then the fail-recover cycles hold it (blocked, saying until when, notified with
    the default events), then it escalates at ``escalate_after`` past the loop's start; never a third
    restart in between."""
    flag, stub, plans = _rig(tmp_path, {"crash_loop": {
        "base": "100ms", "cap": "100ms", "reset_after": "1m", "flap_incidents": 3, "escalate_after": "15s"}})
    _with_notifications(plans)  # events left out: the defaults
    stop = threading.Event()
    with RepairableServer(flag) as server:
        _register(db, server.url)
        with running_daemon(db_url, plans_path=plans):
            poll(lambda: scalar(db, "SELECT state FROM components") == "up", 15)
            crasher = threading.Thread(target=_crash_after_each_restart, args=(server, stub, stop))
            crasher.start()
            try:
                blocked = poll(lambda: scalar(db, "SELECT id FROM incidents WHERE status = 'blocked'"), 40)
                waiting = poll(lambda: scalar(db, "SELECT waiting_for FROM incidents WHERE id = :i", i=blocked), 5)
                assert waiting.startswith("guard flapping") and "escalates at" in waiting
                assert scalar(db, "SELECT waiting_until FROM incidents WHERE id = :i", i=blocked) is not None
                poll(lambda: scalar(db, "SELECT status FROM incidents WHERE id = :i", i=blocked) == "escalated", 40)
                poll(lambda: scalar(db, "SELECT count(*) FROM notifications WHERE body LIKE '%blocked%'"), 20)
            finally:
                stop.set()
                crasher.join(10)
    assert len(stub.actions()) == 2, history(db, stub)
    escalated = [i for i in incidents(db) if i.status == "escalated"]
    assert len(escalated) == 1 and "a person must look" in escalated[0].status_reason, history(db, stub)


def test_an_incident_waiting_before_its_next_attempt_says_why_and_until_when(db, db_url, tmp_path) -> None:
    """Regression (issue 14, defect 9): an incident sat ``open`` with no reason and its next attempt 40 s
    out (a crash-loop wait). Every wait now writes ``waiting_for`` and ``waiting_until`` (shown by
    ``incidents show``, the API and the page)."""
    flag, stub, plans = _rig(tmp_path, {"crash_loop": {"base": "1m", "cap": "1m"}})
    with RepairableServer(flag) as server:
        _register(db, server.url)
        with running_daemon(db_url, plans_path=plans):
            poll(lambda: scalar(db, "SELECT state FROM components") == "up", 15)
            server.breaks()
            poll(lambda: scalar(db, "SELECT count(*) FROM incidents WHERE resolution = 'auto'") == 1, 30)
            poll(lambda: scalar(db, "SELECT state FROM components") == "up", 15)
            server.breaks()  # again soon after a verified recovery: the crash-loop wait (1 min)
            waiting = poll(lambda: scalar(db, "SELECT waiting_for FROM incidents WHERE status = 'open'"), 30)
            row = poll(lambda: scalar(db, "SELECT id FROM incidents WHERE status = 'open'"), 5)
            until = scalar(db, "SELECT waiting_until FROM incidents WHERE id = :i", i=row)
            next_at = scalar(db, "SELECT next_attempt_at FROM incidents WHERE id = :i", i=row)
    assert waiting.startswith("crash loop: failed again soon after 1 verified recoveries"), waiting
    assert until is not None and until == next_at
    assert len(stub.actions()) == 1
    shown = CliRunner().invoke(cli, ["--db", db_url, "incidents", "show", str(row)], catch_exceptions=False)
    assert "waiting_for" in shown.output and "crash loop: failed again soon" in shown.output
    web = create_app(DatabaseSource(db)).test_client()
    api = web.get(f"/api/v1/incidents/{row}").get_json()
    assert api["waiting_for"] == waiting and api["waiting_until"] is not None
    assert "waiting for crash loop: failed again soon" in web.get(f"/incidents/{row}").get_data(as_text=True)


def test_manual_recoveries_do_not_count_toward_crash_loop_or_flap_detection(db, db_url, tmp_path) -> None:
    """Regression (issue 14, defect 9): a manual ``recover`` counted toward the crash-loop streak: a real
    failure soon after an operator's recovery waited the crash-loop backoff (here 1 min) as if the
    service had crashed again after a restart of ours. An operator's decision is not a crash loop: the
    failure is restarted at once."""
    flag, stub, plans = _rig(tmp_path, {"crash_loop": {"base": "1m", "cap": "1m"}})
    with RepairableServer(flag) as server:
        _register(db, server.url)
        # a new failure opens a new incident (not a reopening of the manual one)
        with running_daemon(db_url, plans_path=plans, reopen_window_s=0.01) as daemon:
            poll(lambda: scalar(db, "SELECT state FROM components") == "up", 15)
            poll(lambda: daemon.coordinator, 20).recover("svc")
            poll(lambda: scalar(db, "SELECT count(*) FROM incidents WHERE status <> 'resolved'") == 0, 15)
            server.breaks()
            poll(lambda: len(stub.actions()) == 2, 30)  # the crash-loop wait would be 60 s
            poll(lambda: scalar(db, "SELECT count(*) FROM incidents WHERE status <> 'resolved'") == 0, 15)
    assert [i.resolution for i in incidents(db)] == ["auto", "auto"], history(db, stub)
    assert scalar(db, "SELECT count(*) FROM incidents WHERE waiting_for LIKE 'crash loop%'") == 0, history(db, stub)


def _loop_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("recovery loop")]


def test_a_database_outage_is_two_log_lines_whatever_its_length(caplog) -> None:
    """Regression (issue 14, defect 9): 295 "recovery loop:" warnings per 30 s database outage (half the
    log). One line when the database is lost, one when it is back (with how long it was away); a bug
    is said once per distinct message. Time moves on an injected clock."""
    import logging
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from orchestrator.core.clock import FakeClock
    from orchestrator.db.watch import DatabaseWatch

    clock = FakeClock()
    watch = DatabaseWatch(logging.getLogger("orchestrator.recovery"), "recovery loop", clock=clock)
    lost = OperationalError("SELECT 1", {}, sqlite3.OperationalError("unable to open database file"))
    with caplog.at_level(logging.WARNING, "orchestrator.recovery"):
        for _ in range(300):  # 30 s at a turn every 100 ms
            watch.failed(lost)
            clock.advance(0.1)
        watch.ok()
        watch.ok()
        for _ in range(3):
            watch.failed(KeyError("no_such_row"))
    assert _loop_lines(caplog) == ["recovery loop: database lost: (sqlite3.OperationalError) unable to open "
                                   "database file", "recovery loop: database back after 30.0s (300 turns failed)",
                                   "recovery loop: KeyError: 'no_such_row'"]


@pytest.mark.pg
def test_a_postgresql_outage_is_said_once_lost_and_once_back(pg_schema_url: str, tmp_path, caplog) -> None:
    """The same with a real daemon and PostgreSQL cut for a few seconds behind a TCP proxy."""
    import logging
    import time
    from urllib.parse import urlsplit, urlunsplit

    from orchestrator.db.migrate import ensure_schema
    from tests.tcp_proxy import TcpProxy

    parts = urlsplit(pg_schema_url)
    proxy = TcpProxy(parts.hostname, parts.port or 5432)
    proxied = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port or 5432}", f":{proxy.port}")))
    db = Database(pg_schema_url)
    ensure_schema(db)
    _flag, _stub, plans = _rig(tmp_path, {})
    try:
        with caplog.at_level(logging.WARNING, "orchestrator"), \
                running_daemon(proxied, plans_path=plans) as daemon:
            loop = poll(lambda: daemon.coordinator, 20)  # made after the first sync
            turns = loop._ticks
            poll(lambda: loop._ticks > turns + 5, 20)
            proxy.cut()
            poll(lambda: _loop_lines(caplog), 30)  # the loop saw the outage
            lost_at, turns = time.monotonic(), loop._ticks
            poll(lambda: loop._ticks >= turns + 20 and time.monotonic() - lost_at > 2, 60)
            proxy.restore()
            poll(lambda: len(_loop_lines(caplog)) >= 2 and "back after" in _loop_lines(caplog)[-1], 60)
            turns = loop._ticks
            poll(lambda: loop._ticks >= turns + 10, 30)  # and it stays quiet while the database answers
    finally:
        proxy.cut()
        db.dispose()
    lines = _loop_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("recovery loop: database lost: ") and lines[1].startswith("recovery loop: database back after")
    # the registry sync (every 2 s) says the same once each way too, never once a sync
    syncs = [r.getMessage() for r in caplog.records if "registry sync" in r.getMessage()]
    assert len(syncs) <= 2 and all("database lost" in m or "database back" in m for m in syncs), syncs
