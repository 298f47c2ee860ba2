"""The degradation evaluator on a real database with a moved clock: publication, overrides, scopes,
persistence across restarts, the state file, notifications, and the level applied to itself."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from orchestrator.core.clock import FakeClock
from orchestrator.core.states import ComponentState as S
from orchestrator.core.states import DegradationLevel as L
from orchestrator.db.audit import Actor
from orchestrator.db.engine import Database
from orchestrator.db.models import AuditEntry, Component, DegradationEvent, Notification
from orchestrator.degradation import notify, store
from orchestrator.degradation.policy import DegradationPolicy
from orchestrator.degradation.service import DegradationService
from orchestrator.degradation.signals import FleetSignals
from orchestrator.incidents.routing import Notifications
from tests.tcp_proxy import TcpProxy


@dataclass
class FakeLive:
    """The live view's two reads, set by the test."""

    values: dict[int, S] = field(default_factory=dict)

    def states(self) -> dict[int, S]:
        return dict(self.values)

    def counts(self):
        return Counter(self.values.values())


POLICY = DegradationPolicy.model_validate({"hold": "60s", "scopes": {"team=checkout": {}}})


def add_components(db: Database, clock: FakeClock, specs: list[tuple[str, str, dict]]) -> dict[str, int]:
    now = clock.now()
    with db.write() as session:
        rows = [Component(name=name, check_kind="http", url="http://127.0.0.1:1/", criticality=crit, labels=labels,
                          interval_s=10, timeout_s=2, created_at=now, updated_at=now)
                for name, crit, labels in specs]
        session.add_all(rows)
        session.flush()
        return {r.name: r.id for r in rows}


@pytest.fixture
def setup(db: Database, tmp_path: Path):
    clock = FakeClock()
    ids = add_components(db, clock, [("pay", "critical", {"team": "checkout"}), ("cart", "normal", {"team": "checkout"}),
                                     ("c1", "normal", {"team": "checkout"}), ("c2", "normal", {"team": "checkout"}),
                                     *[(f"w{i}", "low", {"team": "web"}) for i in range(6)]])
    live = FakeLive({cid: S.UP for cid in ids.values()})
    applied: list[L] = []
    service = DegradationService(db, live, FleetSignals(clock), policy=POLICY, clock=clock,
                                 file_path=tmp_path / "state" / "degradation.json", apply=applied.append)
    return service, live, ids, clock, applied


def level(service: DegradationService, scope: str = "global") -> str:
    return service.document(scope)["level"]


def test_critical_down_is_confirmed_published_everywhere_then_held(setup, db: Database, tmp_path: Path) -> None:
    service, live, ids, clock, applied = setup
    service.evaluate()
    first = service.document()
    assert first["level"] == "normal" and first["features"]["analytics"] is True
    live.values[ids["pay"]] = S.DOWN
    service.evaluate()
    assert level(service) == "normal"  # one evaluation is not confirmation
    clock.advance(0.25)
    service.evaluate()
    doc = service.document()
    assert doc["level"] == "minimal" and doc["version"] == first["version"] + 1
    assert "1 critical component down" in doc["reasons"][0]
    assert doc["features"]["realtime_updates"] is False
    on_disk = json.loads((tmp_path / "state" / "degradation.json").read_text())
    assert on_disk["level"] == "minimal" and on_disk["version"] == doc["version"]
    assert on_disk["scopes"]["team=checkout"]["level"] == "minimal"  # its critical one, and 1 of 4: 25%
    # regression: MINIMAL was applied to the orchestrator itself (checks skipped, steps blocked)
    assert applied == [] and service.automation_level() is L.NORMAL
    with db.read() as session:
        events = session.scalars(select(DegradationEvent).order_by(DegradationEvent.id)).all()
        assert [(e.scope, e.from_level, e.to_level) for e in events] == [
            ("global", "normal", "minimal"), ("team=checkout", "normal", "minimal")]
        assert store.stored(session, clock.now())["global"]["version"] == doc["version"]
    # restored: down one level per hold, never two at once
    live.values[ids["pay"]] = S.UP
    seen, docs = [], []
    for _ in range(130):
        clock.advance(1)
        service.evaluate()
        seen.append(level(service))
        docs.append(service.document())
    assert seen[58] == "minimal" and seen[60] == "degraded" and seen[-1] == "normal"
    assert seen.index("normal") - seen.index("degraded") == 60
    # held, computed, and until when it holds: in memory and in the row `degradation status` reads
    held = docs[10]
    assert held["level"] == "minimal" and held["computed"] == "normal"
    assert held["held_until"] == docs[0]["held_until"] and held["held_until"] is not None
    with db.read() as session:
        row = store.stored(session, clock.now())["global"]
    assert row["computed"] == "normal" and row["held_until"] is None and row["level"] == "normal"
    assert docs[-1]["held_until"] is None and applied == []


def test_scope_reads_its_own_level(setup) -> None:
    service, live, ids, clock, _ = setup
    live.values[ids["cart"]] = S.DEGRADED  # 1 of 4 checkout components, 1 of 10 overall
    live.values[ids["c1"]] = S.DOWN
    for _ in range(2):
        service.evaluate()
        clock.advance(0.25)
    assert level(service, "team=checkout") == "emergency"  # 50% of the scope
    assert level(service) == "degraded"  # 20% of the fleet
    assert service.document("team=web") is None


def test_override_wins_until_it_expires_and_is_audited(setup, db: Database) -> None:
    service, live, ids, clock, _ = setup
    service.evaluate()
    store.set_override(db, "global", "emergency", 30, "failover drill", actor=Actor("alice", "ops1", "cli"),
                       clock=clock)
    service.evaluate()
    doc = service.document()
    assert doc["level"] == "emergency" and doc["computed"] == "normal"
    assert service.automation_level() is L.EMERGENCY  # an operator's EMERGENCY freezes automation
    assert service.frozen_until() == doc["override"]["expires_at"]
    assert doc["override"]["actor"] == "alice@ops1" and "failover drill" in doc["reasons"][0]
    clock.advance(31)
    service.evaluate()
    assert level(service) == "normal" and service.document()["override"] is None
    assert service.automation_level() is L.NORMAL and service.frozen_until() is None
    with db.read() as session:
        events = [(e.to_level, e.actor) for e in session.scalars(select(DegradationEvent).where(
            DegradationEvent.scope == "global").order_by(DegradationEvent.id))]
        assert events == [("emergency", "alice@ops1"), ("normal", "alice@ops1")]
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "degradation_set")).one()
        assert audit.after["level"] == "emergency" and audit.target == "degradation:global"


def test_override_cleared_returns_to_the_policy_level(setup, db: Database) -> None:
    service, live, ids, clock, _ = setup
    service.evaluate()
    store.set_override(db, "global", "minimal", 3600, "load test", actor=Actor(), clock=clock)
    service.evaluate()
    assert level(service) == "minimal"
    assert service.automation_level() is L.NORMAL  # only EMERGENCY is an operator's freeze
    store.clear_override(db, "global", actor=Actor(), clock=clock)
    service.evaluate()
    assert level(service) == "normal"


def test_restart_keeps_the_published_level(setup, db: Database) -> None:
    service, live, ids, clock, _ = setup
    for cid in list(ids.values())[:6]:
        live.values[cid] = S.DOWN
    service.evaluate()
    service.evaluate()
    assert level(service) == "emergency"
    version = service.document()["version"]
    for cid in ids.values():
        live.values[cid] = S.UP
    again = DegradationService(db, live, FleetSignals(clock), policy=POLICY, clock=clock)
    again.evaluate()
    assert level(again) == "emergency" and again.document()["version"] == version  # held, not dropped


def test_wait_returns_as_soon_as_the_version_moves(setup) -> None:
    service, live, ids, clock, _ = setup
    service.evaluate()
    version = service.document()["version"]
    got: list[dict] = []
    waiter = threading.Thread(target=lambda: got.append(service.wait("global", version, 20)))
    waiter.start()
    live.values[ids["pay"]] = S.DOWN
    service.evaluate()
    service.evaluate()
    waiter.join(5)
    assert not waiter.is_alive() and got[0]["level"] == "minimal"
    assert service.wait("global", version, 0)["version"] == version + 1  # already moved: at once


def test_overload_sheds_and_says_so(db: Database, caplog) -> None:
    clock = FakeClock()
    signals = FleetSignals(clock)
    applied: list[L] = []
    service = DegradationService(db, FakeLive({1: S.UP}), signals, policy=POLICY, clock=clock, apply=applied.append)
    for _ in range(50):
        signals.observe(True, 10.0, 1500.0)  # checks run 1.5 s late
    service.evaluate()
    service.evaluate()
    # its own overload stretches its checks (applied), never freezes recovery, is not the fleet's level
    assert applied == [L.DEGRADED] and service.automation_level() is L.NORMAL
    assert level(service) == "normal"
    assert "overloaded (self_protection, check lateness p95" in caplog.text
    assert "UP low components checked at 2x their interval" in caplog.text
    own = service.document()["self_protection"]
    assert own["level"] == "degraded" and "2x" in own["checks"]
    with db.read() as session:
        assert store.stored(session, clock.now())["global"]["self_protection"] == own


def test_first_checks_are_not_overload(db: Database) -> None:
    """Regression: at start-up the fleet's first round (late while the check workers boot) read as
    overload, and the daemon shed its healthy checks as at MINIMAL 6 s after it started."""
    clock = FakeClock()
    signals = FleetSignals(clock)
    applied: list[L] = []
    service = DegradationService(db, FakeLive({1: S.UP}), signals, policy=POLICY, clock=clock, apply=applied.append)
    for cid in range(50):
        signals.observe(True, 10.0, 6000.0, cid)  # every component's first check, 6 s late
    service.evaluate()
    service.evaluate()
    assert applied == [] and service.automation_level() is L.NORMAL
    for cid in range(50):
        signals.observe(True, 10.0, 6000.0, cid)  # their second checks: that is overload
    service.evaluate()
    service.evaluate()
    assert applied == [L.MINIMAL]


def test_level_changes_are_notified_once(setup, db: Database) -> None:
    service, live, ids, clock, _ = setup
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        config = Notifications.model_validate({"webhooks": [{"url": f"http://127.0.0.1:{httpd.server_address[1]}/"}]})
        live.values[ids["pay"]] = S.DOWN
        service.evaluate()
        service.evaluate()
        assert notify.flush(db, config, clock=clock) == 2
        assert notify.flush(db, config, clock=clock) == 0
        assert len(received) == 1 and "normal -> minimal" in received[0]["body"]
        assert received[0]["events"] == ["degradation"]
        with db.read() as session:
            assert session.scalars(select(Notification.status)).all() == ["sent"]
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.pg
def test_database_unreachable_publishes_emergency_and_records_it_later(pg_schema_url: str, tmp_path: Path) -> None:
    from orchestrator.db.migrate import ensure_schema

    ensure_schema(Database(pg_schema_url))
    parts = urlsplit(pg_schema_url)
    proxy = TcpProxy(parts.hostname, parts.port or 5432)
    db = Database(pg_schema_url.replace(f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{proxy.port}"))
    clock = FakeClock()
    ids = add_components(db, clock, [("a", "normal", {}), ("b", "normal", {})])
    live = FakeLive({cid: S.UP for cid in ids.values()})
    service = DegradationService(db, live, FleetSignals(clock), policy=POLICY, clock=clock,
                                 file_path=tmp_path / "d.json")
    service.evaluate()
    proxy.cut()
    try:
        service.evaluate()
        clock.advance(14)
        service.evaluate()
        service.evaluate()
        assert level(service) == "normal"  # a blip (a failover, a restart) is not an emergency: `for` 15 s
        clock.advance(2)
        service.evaluate()
        service.evaluate()
        assert level(service) == "emergency"  # published from memory: the API and the file do not need it
        assert service.automation_level() is L.NORMAL  # recovery is not frozen by its own database
        assert json.loads((tmp_path / "d.json").read_text())["level"] == "emergency"
        assert "unreachable" in service.document()["reasons"][0]
    finally:
        proxy.restore()
    service.evaluate()
    with db.read() as session:
        assert [e.to_level for e in session.scalars(select(DegradationEvent).where(
            DegradationEvent.scope == "global"))] == ["emergency"]
    db.dispose()
