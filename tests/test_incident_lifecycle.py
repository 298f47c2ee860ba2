"""Opening, reopening and resolving through the recorder's path: merges only without UP in between."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from orchestrator.core.states import ComponentState as C
from orchestrator.db.models import Incident, StateTransition
from orchestrator.history.recorder import Recorder, TransitionItem
from orchestrator.reports.history import load_incidents
from tests.servers import LoopbackHTTPServer
from tests.test_recovery_support import add_component

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def _component(db) -> int:
    with LoopbackHTTPServer("ok") as server:
        return add_component(db, "api", server.url, plan=None)


def _feed(db, cid: int, *moves: tuple[float, C, C, str]) -> list[Incident]:
    recorder = Recorder(db)
    for at_s, frm, to, reason in moves:
        recorder.add_transition(TransitionItem(cid, "api", frm, to, T0 + timedelta(seconds=at_s), reason, 0))
        assert recorder.flush_now()
    with db.read() as session:
        return list(session.scalars(select(Incident).order_by(Incident.id)))


def test_two_short_outages_minutes_apart_are_two_incidents_each_with_its_own_mttr(db) -> None:
    """Regression: the 5 m reopen window merged two 1 s outages 3.5 min apart into one 3 m 48 s incident
    (the report's MTTR 2 m 22 s while each recovery took about 1 s) and overwrote the first reason."""
    cid = _component(db)
    incidents = _feed(db, cid, (0, C.UP, C.DOWN, "timeout"), (1, C.DOWN, C.UP, "2 successes"),
                      (211, C.UP, C.DOWN, "status 500"), (212, C.DOWN, C.UP, "2 successes"))
    assert [(i.status, i.resolution, i.reason) for i in incidents] == [
        ("resolved", "self", "timeout"), ("resolved", "self", "status 500")]
    with db.read() as session:
        durations = [r.duration_s for r in load_incidents(session, T0 - timedelta(hours=1), T0 + timedelta(hours=1),
                                                          None)]
    assert sorted(durations) == [1.0, 1.0]


def test_a_failure_that_never_held_up_reopens_and_keeps_the_first_reason(db) -> None:
    cid = _component(db)
    incidents = _feed(db, cid, (0, C.UP, C.DOWN, "timeout"))
    with db.write() as session:  # closed without the component ever going UP (e.g. by an operator)
        from orchestrator.core.states import Resolution
        from orchestrator.incidents.lifecycle import resolve

        resolve(session, session.get(Incident, incidents[0].id), at=T0 + timedelta(seconds=5),
                resolution=Resolution.MANUAL)
    # paused and resumed meanwhile: back to UNKNOWN, then DOWN again, never UP
    incidents = _feed(db, cid, (10, C.DOWN, C.PAUSED, "paused"), (20, C.PAUSED, C.UNKNOWN, "resumed"),
                      (30, C.UNKNOWN, C.DOWN, "status 503"))
    [merged] = incidents
    assert (merged.status, merged.reopen_count, merged.reason) == ("open", 1, "timeout")
    assert merged.details["reasons"] == ["status 503"] and merged.opened_at == T0  # MTTR from the first failure
    with db.read() as session:
        ups = session.scalars(select(StateTransition).where(StateTransition.to_state == "up")).all()
    assert ups == []


def test_flapping_then_down_after_a_run_closed_the_incident_in_a_good_phase_has_an_incident(db) -> None:
    """Regression (the 30-minute PostgreSQL soak: a component DOWN with no open incident for 22 s): the
    restart verified in a good phase of the flap, and the run resolved the incident ``self`` while the
    tracker still said FLAPPING; FLAPPING -> DOWN then opened nothing. It reopens the incident now (the
    component never held UP since)."""
    from orchestrator.core.states import Resolution
    from orchestrator.incidents.lifecycle import resolve

    cid = _component(db)
    [first] = _feed(db, cid, (0, C.UP, C.DOWN, "status 500"), (5, C.DOWN, C.FLAPPING, "flapping"))
    with db.write() as session:  # what the run does after a verification in a good phase
        resolve(session, session.get(Incident, first.id), at=T0 + timedelta(seconds=8), resolution=Resolution.SELF,
                reason="healthy after step 0 (restart) attempt 1, but it was flapping")
    incidents = _feed(db, cid, (14, C.FLAPPING, C.DOWN, "stable, 3 consecutive failures: connection refused"))
    assert [(i.status, i.reopen_count) for i in incidents] == [("open", 1)], incidents
    # while one is active, FLAPPING <-> DOWN open nothing more
    incidents = _feed(db, cid, (20, C.DOWN, C.FLAPPING, "flapping"), (30, C.FLAPPING, C.DOWN, "stable"))
    assert [(i.status, i.reopen_count) for i in incidents] == [("open", 1)], incidents
