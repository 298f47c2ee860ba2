"""What degradation does to the orchestrator itself, with a moved clock and the real dispatcher and CLI:
its own overload stretches only UP low/normal checks (at most 2x, none skipped); the held level, the
computed one and until when it holds, and the overload, are shown by `degradation status` and `status`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.clock import FakeClock
from orchestrator.core.states import ComponentState as S
from orchestrator.core.states import DegradationLevel as L
from orchestrator.db.engine import Database
from orchestrator.db.models import DaemonInstance
from orchestrator.degradation import actions
from orchestrator.degradation.service import DegradationService
from orchestrator.degradation.signals import FleetSignals
from orchestrator.health.dispatch import Dispatcher
from orchestrator.web.app import create_app
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.test_degradation_service import POLICY, FakeLive, add_components
from tests.test_dispatch import RecordingLanes

SPEC = CheckSpec(url="http://127.0.0.1:9/")


def overloaded(service: DegradationService, signals: FleetSignals, late_ms: float) -> None:
    for cid in range(50):
        signals.observe(True, 10.0, late_ms, cid)
        signals.observe(True, 10.0, late_ms, cid)  # second checks: a first round's lateness is not overload
    service.evaluate()
    service.evaluate()


def test_overload_stretches_only_up_low_and_normal_components_at_most_twice(db: Database) -> None:
    """Regression: the orchestrator's overload (check lateness over minimal_above) applied MINIMAL to
    its own checks, and MINIMAL skipped every check of UP normal and low components."""
    clock = FakeClock()
    live = FakeLive({1: S.UP, 2: S.UP, 3: S.UP, 4: S.DOWN, 5: S.UP})
    criticality = {1: "low", 2: "normal", 3: "critical", 4: "low", 5: "high"}
    lanes = RecordingLanes()
    dispatcher = Dispatcher(lanes, clock=clock)
    for cid, crit in criticality.items():
        dispatcher.add(cid, SPEC, interval_s=1.0, timeout_s=0.5, criticality=crit, first_delay_s=0.0)

    def apply(level: L) -> None:  # as the daemon wires it
        dispatcher.set_shedding(lambda cid, crit: actions.check_factor(level, crit, live.values[cid]))

    signals = FleetSignals(clock)
    service = DegradationService(db, live, signals, policy=POLICY, clock=clock, apply=apply)
    overloaded(service, signals, 6000.0)  # 6 s late: over minimal_above (5 s)
    assert service.check_level is L.MINIMAL and service.automation_level() is L.NORMAL
    assert service.document()["level"] == "degraded"  # the fleet's (1 of 5 down): it changes no check

    runs: dict[int, int] = dict.fromkeys(criticality, 0)
    for _ in range(400):  # 20 s of ticks; every run passes (the normal cadence)
        dispatcher.tick()
        for batch in lanes.batches:
            for due in batch:
                runs[due.component_id] += 1
                dispatcher.done(due.component_id, None)
        lanes.batches.clear()
        clock.advance(0.05)
    # UP low and normal: every 2 s; critical, high and the DOWN one: every 1 s; none skipped
    assert 9 <= runs[1] <= 11 and 9 <= runs[2] <= 11, runs
    assert runs[3] >= 19 and runs[4] >= 19 and runs[5] >= 19, runs


def test_status_and_degradation_status_show_held_computed_until_and_the_overload(db: Database, run_cli) -> None:
    clock = FakeClock(datetime.now(UTC))
    ids = add_components(db, clock, [(f"c{i}", "critical" if i == 0 else "normal", {}) for i in range(6)])
    live = FakeLive({cid: S.UP for cid in ids.values()})
    signals = FleetSignals(clock)
    service = DegradationService(db, live, signals, policy=POLICY, clock=clock)
    live.values[ids["c0"]] = S.DOWN
    service.evaluate()
    clock.advance(0.25)
    service.evaluate()
    assert service.document()["level"] == "minimal"
    live.values[ids["c0"]] = S.UP
    clock.advance(1)
    service.evaluate()
    overloaded(service, signals, 1500.0)
    doc = service.document()
    assert doc["level"] == "minimal" and doc["computed"] == "normal" and doc["held_until"] is not None
    with db.write() as session:
        session.add(DaemonInstance(id="i1", host="h", pid=1, version="x", started_at=clock.now(),
                                   heartbeat_at=datetime.now(UTC)))

    shown = run_cli("degradation", "status").output
    until = f"{doc['held_until']:%Y-%m-%d %H:%M:%S}Z"
    assert "minimal held until " + until in shown and "computed" in shown and "normal" in shown
    assert "self-protection: overloaded" in shown and "UP low components checked at 2x" in shown
    status = run_cli("status").output
    assert "self-protection: overloaded" in status and "FROZEN" not in status
    page = create_app(DatabaseSource(db, clock=clock), WebSettings()).test_client().get("/").get_data(as_text=True)
    assert "computed now: normal" in page and f"held until {doc['held_until']:%Y-%m-%d %H:%M:%S} UTC" in page
    assert "self-protection: overloaded" in page


@pytest.mark.parametrize("spelled", ["MINIMAL", "Emergency", "degraded"])
def test_level_names_in_any_case(db: Database, run_cli, spelled: str) -> None:
    """Regression: `degradation set MINIMAL` exited 2 ('MINIMAL' is not one of 'normal', ...)."""
    done = run_cli("degradation", "set", spelled, "--for", "5m", "--reason", "drill")
    assert done.exit_code == 0, done.output
    assert f"{spelled.lower()} until" in done.output
