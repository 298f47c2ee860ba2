"""The recovery loop's waits run on the monotonic clock: a backoff written as ``next_attempt_at`` ends
on time although the wall clock stepped back an hour (invariant 7; issue 14, defect 6), and so do the
waits a run computes again from stored wall times (a crash loop's delay, an approval's timeout, an
inherited next attempt), stepped back or forward an hour in their middle."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.core.states import ComponentState, Resolution
from orchestrator.db.models import Incident
from orchestrator.incidents import lifecycle
from orchestrator.incidents.lifecycle import open_incident
from orchestrator.plans import PlanSet
from orchestrator.recovery.coordinator import RecoveryCoordinator
from orchestrator.resilience.deadlines import WallDeadlines
from tests import test_recovery_support as rs
from tests.servers import LoopbackHTTPServer, wait_for
from tests.test_recovery_support import stubs_fixture  # noqa: F401 - the `stubs` fixture
from tests.test_timer_clock import SteppedClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_wall_deadlines_follow_the_monotonic_clock() -> None:
    waits = WallDeadlines()
    waits.set(1, T0 + timedelta(seconds=5), now=T0, mono=100.0)
    waits.set(2, T0 + timedelta(seconds=50), now=T0, mono=100.0)
    stepped_back = T0 - timedelta(hours=1) + timedelta(seconds=6)  # 6 s later, the wall an hour behind
    assert waits.horizon(stepped_back, 106.0) == T0 + timedelta(seconds=5)  # 1 is found, 2 is not
    assert waits.waiting(106.0) == {2: T0 + timedelta(seconds=50)}
    stepped_on = T0 + timedelta(hours=1, seconds=7)  # 7 s later, the wall an hour ahead: 2 still waits
    assert waits.horizon(stepped_on, 107.0) == stepped_on and set(waits.waiting(107.0)) == {2}
    waits.expire(107.0)
    assert waits.horizon(T0, 107.0) == T0
    waits.set(2, None, now=T0, mono=107.0)
    assert waits.waiting(107.0) == {}


def test_a_wait_asked_again_is_answered_on_the_monotonic_clock() -> None:
    waits, at = WallDeadlines(), T0 + timedelta(seconds=5)
    waits.set(1, at, now=T0, mono=100.0)
    back, ahead = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
    assert not waits.passed(1, at, now=ahead, mono=102.0)  # the wall says over, 2 s of 5 went by
    waits.set(1, at, now=ahead, mono=102.0)  # the same wait written again (on a stepped wall) ends when it did
    assert waits.waiting(104.9) == {1: at} and not waits.waiting(105.0)
    waits.expire(106.0)
    assert waits.passed(1, at, now=back, mono=106.0)  # ended, although the wall is an hour behind
    assert not waits.passed(1, at + timedelta(seconds=1), now=T0, mono=106.0)  # another wall time: the wall decides
    assert waits.passed(2, at, now=at, mono=0.0)  # never written here: the wall decides


def test_a_backoff_ends_on_time_after_the_wall_clock_steps_back(db, stubs: rs.Stubs) -> None:
    stubs.make("svcctl", exit_code=1)  # the restart fails: the next attempt waits its backoff
    plans = rs.plan_set({"p": {"steps": [{"strategy": "restart", "params": {"command": ["svcctl", "{component.name}"]},
                                       "attempts": 3, "backoff": {"base": "1s", "cap": "1s"}}]}})
    health, clock = rs.ScriptedHealth(), SteppedClock()
    with LoopbackHTTPServer("500") as failing:
        cid = rs.add_component(db, "web", failing.url, plans=plans)
        health.set(cid, ComponentState.DOWN)
        coordinator = RecoveryCoordinator(db, plans, health=health, clock=clock, settle_s=0.0, tick_s=0.05)
        coordinator.start()
        try:
            iid = rs.open_for(db, cid, "web")
            assert wait_for(lambda: rs.incident(db, iid).next_attempt_at is not None, 20)  # waiting for attempt 2
            clock.offset = timedelta(hours=-1)
            assert wait_for(lambda: len([r for r in rs.journal_rows(db, iid) if r.executed]) >= 2, 20)
        finally:
            coordinator.shutdown(5)


# -- the waits a run computes again from stored wall times (issue 14, item 6) ------------------------------
#: The wait each test below sets up, in seconds: long enough to step the wall clock in its middle.
WAIT_S = 3.0
#: How long the action may come after the wait's end on a loaded machine (a frozen wait is an hour).
SLACK_S = 15.0
STEPS = [pytest.param(-1, id="wall-back-1h"), pytest.param(1, id="wall-forward-1h")]


def _waits_on_monotonic_time(db, stubs: rs.Stubs, clock: SteppedClock, iid: int, began: float, step_h: int,
                             waiting: str) -> None:
    """Once the incident says it waits (``waiting``), step the wall clock ``step_h`` hours; the action
    comes when the wait ends on the monotonic clock: not before (no early fire), nor an hour later."""
    assert wait_for(lambda: (rs.incident(db, iid).waiting_for or "").startswith(waiting), 20), rs.incident(db, iid)
    assert stubs.calls() == []
    clock.offset = timedelta(hours=step_h)
    assert wait_for(lambda: stubs.calls() != [], WAIT_S + SLACK_S), (
        f"no action {WAIT_S + SLACK_S:g}s after the wall clock stepped {step_h:+d} h: {rs.incident(db, iid)}")
    assert time.monotonic() - began >= WAIT_S - 0.2, "the wait ended early: the wall clock decided"


def _opened_after_a_verified_recovery(db, cid: int, name: str, now: datetime) -> int:
    """A verified recovery 2 minutes ago, then a new failure now: the crash-loop wait applies."""
    with db.write() as session:
        past = open_incident(session, component_id=cid, component_name=name, at=now - timedelta(minutes=3),
                             reason="down").incident_id
        lifecycle.resolve(session, session.get(Incident, past), at=now - timedelta(minutes=2),
                          resolution=Resolution.AUTO, reason="verified")
        return open_incident(session, component_id=cid, component_name=name, at=now, reason="down again",
                             reopen_window_s=0).incident_id


def _restart_plan(**top) -> PlanSet:
    return rs.plan_set({"p": {"steps": [{"strategy": "restart", "params": {"command": ["svcctl", "{component.name}"]},
                                         **top.pop("step", {})}]}}, **top)


@contextmanager
def _recovering(db, plans: PlanSet, mode: str, before_start: Callable[..., int] | None = None):
    """A DOWN component ``web`` served in ``mode`` and a running coordinator on a SteppedClock;
    yields (component id, clock, what ``before_start`` returned)."""
    health, clock = rs.ScriptedHealth(), SteppedClock()
    with LoopbackHTTPServer(mode) as server:
        cid = rs.add_component(db, "web", server.url, plans=plans)
        health.set(cid, ComponentState.DOWN)
        prepared = before_start(db, cid, clock) if before_start is not None else None
        coordinator = RecoveryCoordinator(db, plans, health=health, clock=clock, settle_s=0.0, tick_s=0.05)
        coordinator.start()
        try:
            yield cid, clock, prepared
        finally:
            coordinator.shutdown(5)


@pytest.mark.parametrize("step_h", STEPS)
def test_a_crash_loop_wait_ends_on_monotonic_time_when_the_wall_clock_steps(db, stubs: rs.Stubs, step_h) -> None:
    """Regression: the crash-loop gate compared ``opened_at + delay`` with the wall clock; stepped back
    an hour mid-wait, the incident waited that hour more."""
    stubs.make("svcctl")
    plans = _restart_plan(limits={"crash_loop": {"base": f"{WAIT_S:g}s", "cap": f"{WAIT_S:g}s"}})
    with _recovering(db, plans, "500") as (cid, clock, _):
        began = time.monotonic()
        iid = _opened_after_a_verified_recovery(db, cid, "web", clock.now())
        _waits_on_monotonic_time(db, stubs, clock, iid, began, step_h, "crash loop")


@pytest.mark.parametrize("step_h", STEPS)
def test_an_approval_timeout_ends_on_monotonic_time_when_the_wall_clock_steps(db, stubs: rs.Stubs, step_h) -> None:
    """Regression: the approval timeout compared ``requested_at + timeout`` with the wall clock; stepped
    back an hour mid-wait, the step waited that hour more for its timeout."""
    stubs.make("svcctl")
    plans = _restart_plan(step={"approval": {"required": True, "timeout": f"{WAIT_S:g}s", "on_timeout": "proceed"}})
    with _recovering(db, plans, "500") as (cid, clock, _):
        began = time.monotonic()
        iid = rs.open_for(db, cid, "web")
        _waits_on_monotonic_time(db, stubs, clock, iid, began, step_h, "awaiting approval")


def _left_by_an_earlier_process(db, cid: int, clock: SteppedClock) -> int:
    """An active incident whose next attempt an earlier process set WAIT_S from now."""
    iid = rs.open_for(db, cid, "web")
    with db.write() as session:
        session.get(Incident, iid).next_attempt_at = clock.now() + timedelta(seconds=WAIT_S)
    return iid


@pytest.mark.parametrize("step_h", STEPS)
def test_an_inherited_next_attempt_ends_on_monotonic_time_when_the_wall_clock_steps(db, stubs: rs.Stubs,
                                                                                   step_h) -> None:
    """An incident left by an earlier process with its next attempt due in WAIT_S: after the fresh
    check, the wait it still has is kept on the monotonic clock."""
    stubs.make("svcctl")
    began = time.monotonic()
    with _recovering(db, _restart_plan(), "500", _left_by_an_earlier_process) as (_cid, clock, iid):
        _waits_on_monotonic_time(db, stubs, clock, iid, began, step_h, "checked fresh")
