"""End to end: a real loopback service whose latency ramps from 20 ms to past the timeout, checked by
the real daemon on a real SQLite database, is reported ``degraded`` (with p95 and baseline in the
reason) before it is ``down``; only the DOWN opens an incident."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from orchestrator.db.models import CheckRollup, Component, Incident, StateTransition
from tests.daemon_helpers import poll, running_daemon
from tests.servers import LoopbackHTTPServer

START_MS, END_MS, RAMP_S = 20.0, 400.0, 20.0
INTERVAL_S, TIMEOUT_S = 0.25, 0.2  # threshold min(100 ms floor, 0.8 x 200 ms): 100 ms


class RampingServer(LoopbackHTTPServer):
    """The "slow" mode, whose delay climbs linearly from START_MS to END_MS over RAMP_S once ramping."""

    def __init__(self) -> None:
        self.ramp_started: float | None = None
        super().__init__("slow", slow_delay_s=START_MS / 1000)

    @property
    def slow_delay_s(self) -> float:  # read by the handler for each request
        if self.ramp_started is None:
            return START_MS / 1000
        done = min(1.0, (time.monotonic() - self.ramp_started) / RAMP_S)
        return (START_MS + done * (END_MS - START_MS)) / 1000

    @slow_delay_s.setter
    def slow_delay_s(self, value: float) -> None:  # LoopbackHTTPServer sets it; the ramp decides
        pass


def _seed_rollups(db: Database, cid: int, minutes: int = 5, p50_ms: float = 20.0) -> None:
    """The last minutes as the recorder would have rolled them up: what a restarted daemon seeds from."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with db.write() as session:
        for i in range(1, minutes + 1):
            session.add(CheckRollup(component_id=cid, minute=now - timedelta(minutes=i), checks=300, failures=0,
                                    latency_p50_ms=p50_ms, latency_p95_ms=p50_ms * 1.3, latency_max_ms=p50_ms * 2))


@pytest.mark.slow
def test_a_slowing_service_is_degraded_before_it_is_down(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    db = Database(db_url)
    ensure_schema(db)
    with RampingServer() as server:
        Registry(db).add(ComponentSpec(name="api", url=server.url, interval=INTERVAL_S, timeout=TIMEOUT_S,
                                       failure_threshold=3, success_threshold=1))
        with db.read() as session:
            cid = session.scalar(sa.select(Component.id).where(Component.name == "api"))
        _seed_rollups(db, cid)

        def row() -> Component:
            with db.read() as session:
                return session.get(Component, cid)

        seen_reasons: set[str] = set()

        def down_yet() -> bool:
            current = row()
            if current.state == "degraded":
                seen_reasons.add(current.state_reason)
            return current.state == "down"

        with running_daemon(db_url, check_processes=0):
            poll(lambda: row().state == "up", timeout_s=15)
            hits = server.hits
            poll(lambda: server.hits >= hits + 12, timeout_s=15)  # a full window at 20 ms first
            server.ramp_started = time.monotonic()
            poll(down_yet, timeout_s=40)

    with db.read() as session:
        transitions = session.execute(sa.select(StateTransition.from_state, StateTransition.to_state,
                                                StateTransition.at, StateTransition.reason)
                                      .where(StateTransition.component_id == cid)
                                      .order_by(StateTransition.id)).all()
        incidents = session.execute(sa.select(Incident.opened_at, Incident.reason)
                                    .where(Incident.component_id == cid)).all()
    moves = [(t.from_state, t.to_state) for t in transitions]
    assert moves == [("unknown", "up"), ("up", "degraded"), ("degraded", "down")], transitions
    degraded, down = transitions[1], transitions[2]
    assert degraded.at < down.at
    assert degraded.reason.startswith("p95 ") and "vs baseline 2" in degraded.reason, degraded.reason
    assert seen_reasons == {degraded.reason}  # components.state_reason while it was degraded
    assert down.reason.startswith("3 consecutive failures")
    # only DEGRADED -> DOWN opened an incident
    assert [(i.opened_at, i.reason) for i in incidents] == [(down.at, down.reason)]
    db.dispose()
