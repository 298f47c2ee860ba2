"""The health engine end to end, in-process: real scheduler, real loopback servers, real databases."""

from __future__ import annotations

import pytest

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from tests.daemon_helpers import poll, running_daemon, scalar
from tests.servers import LoopbackHTTPServer

FAST = {"interval": 0.5, "timeout": 0.3, "failure_threshold": 2, "success_threshold": 2}


def _add(db: Database, name: str, url: str, **extra: object) -> int:
    Registry(db).add(ComponentSpec(name=name, url=url, **{**FAST, **extra}))
    return scalar(db, "SELECT id FROM components WHERE name = :n", n=name)


def _state(db: Database, name: str) -> str:
    return scalar(db, "SELECT state FROM components WHERE name = :n", n=name)


def _incident(db: Database, cid: int) -> tuple | None:
    with db.engine.connect() as conn:
        import sqlalchemy as sa

        return conn.execute(sa.text("SELECT status, resolution FROM incidents WHERE component_id = :c "
                                    "ORDER BY id DESC LIMIT 1"), {"c": cid}).first()


@pytest.mark.parametrize("fault", ["crash", "500", "hang"])
def test_fault_opens_incident_and_fix_resolves_it(db: Database, db_url: str, fault: str) -> None:
    with LoopbackHTTPServer() as broken, LoopbackHTTPServer() as healthy:
        cid = _add(db, "api", broken.url)
        other = _add(db, "other", healthy.url)
        with running_daemon(db_url, workers=8):
            poll(lambda: _state(db, "api") == "up" and _state(db, "other") == "up")
            if fault == "crash":
                broken.crash()
            else:
                broken.set_mode(fault)
            poll(lambda: _state(db, "api") == "down")
            # no plan file: the recovery loop blocks the incident ("no plan"), observing only
            poll(lambda: _incident(db, cid) == ("blocked", None))
            assert _state(db, "other") == "up", "a broken component never disturbs another"
            if fault == "crash":
                broken.restart()
            else:
                broken.set_mode("ok")
            poll(lambda: _incident(db, cid) == ("resolved", "self"), 15)
            assert _state(db, "api") == "up"
        assert _incident(db, other) is None


def test_nothing_lost_on_stop_every_request_has_a_row(db: Database, db_url: str) -> None:
    with LoopbackHTTPServer() as server:
        cid = _add(db, "api", server.url)
        with running_daemon(db_url, workers=4):
            poll(lambda: server.hits >= 6)
        rows = scalar(db, "SELECT count(*) FROM check_results WHERE component_id = :c", c=cid)
        assert rows == server.hits


def test_registry_changes_take_effect_without_restart(db: Database, db_url: str) -> None:
    with LoopbackHTTPServer() as first, LoopbackHTTPServer() as second:
        _add(db, "first", first.url)
        with running_daemon(db_url, workers=4) as daemon:
            poll(lambda: first.hits > 0)
            _add(db, "second", second.url)
            poll(lambda: second.hits > 0, timeout_s=5)  # added while running: checked within 5 s
            Registry(db).remove("first")
            poll(lambda: all(name != "first" for name in daemon.plane.judge.names().values()), timeout_s=5)
            hits, later = first.hits, second.hits + 4
            poll(lambda: second.hits >= later)  # four more checks of the other: time has passed
            assert first.hits <= hits + 1  # at most one check already in flight


def test_paused_component_records_results_but_opens_no_incident(db: Database, db_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    with LoopbackHTTPServer() as server:
        cid = _add(db, "api", server.url)
        Registry(db).set_hold("api", paused_until=datetime.now(UTC) + timedelta(hours=1), reason="deploy",
                              pause=True)
        with running_daemon(db_url, workers=4):
            poll(lambda: _state(db, "api") == "paused")
            server.set_mode("500")
            poll(lambda: scalar(db, "SELECT count(*) FROM check_results WHERE component_id = :c AND NOT ok",
                                c=cid) >= 4)
            assert _incident(db, cid) is None
            Registry(db).set_hold("api", paused_until=None, reason=None, pause=False)
            poll(lambda: _state(db, "api") == "down", 10)  # judged again once resumed
            assert _incident(db, cid)[0] in ("open", "blocked")  # blocked as soon as the loop sees: no plan


def test_unreliable_view_changes_no_state(db: Database, db_url: str) -> None:
    """Every sentinel fails: results are recorded as unreliable and nothing goes DOWN."""
    with LoopbackHTTPServer() as server, LoopbackHTTPServer() as sentinel:
        sentinel.crash()
        cid = _add(db, "api", server.url)
        server.set_mode("500")
        with running_daemon(db_url, workers=4, sentinels=[sentinel.url]) as daemon:
            poll(lambda: scalar(db, "SELECT count(*) FROM check_results WHERE component_id = :c", c=cid) >= 5)
            assert not daemon.plane.live.view_reliable()
            assert _state(db, "api") == "unknown" and _incident(db, cid) is None
            assert scalar(db, "SELECT count(*) FROM check_results WHERE reliable") == 0
