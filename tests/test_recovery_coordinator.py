"""Coordinator guards in action: flapping, mass outage, dependencies, budget and breaker (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from orchestrator.core.clock import SYSTEM_CLOCK
from orchestrator.core.states import ComponentState, Resolution
from orchestrator.db.models import Component, Incident, IncidentEventRow
from orchestrator.incidents.lifecycle import resolve
from orchestrator.incidents.notifier import Notifier
from orchestrator.recovery import records
from orchestrator.recovery.coordinator import RecoveryCoordinator
from tests.fault_rig import RepairableServer
from tests.servers import LoopbackHTTPServer, wait_for
from tests.test_recovery_support import (
    ScriptedHealth,
    Stubs,
    add_component,
    incident,
    journal_rows,
    open_for,
    plan_set,
    stubs_fixture,  # noqa: F401 - the `stubs` fixture
)

DOWN, UP, FLAPPING = ComponentState.DOWN, ComponentState.UP, ComponentState.FLAPPING
NOTIFY = {"webhooks": [{"url": "http://127.0.0.1:9/hook"}], "group_window": "30s"}


@pytest.fixture
def failing() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer("500") as server:
        yield server


class Outbox:
    """A sender that keeps messages instead of delivering them."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []

    def __call__(self, urls, webhooks, title, body, timeout_s, **kw):
        from orchestrator.incidents.notify_send import Delivery

        self.messages.append((title, body))
        return [Delivery(hook.url, "webhook", True, "delivered", 0.0, 200) for hook in webhooks]


@pytest.fixture
def rig(db):
    """(make coordinator, outbox); coordinators are shut down afterwards."""
    made: list[RecoveryCoordinator] = []
    outbox = Outbox()

    def make(plans, health) -> RecoveryCoordinator:
        notifier = Notifier(db, plans.notifications, sender=outbox)
        coordinator = RecoveryCoordinator(db, plans, health=health, settle_s=0.0, notifier=notifier, tick_s=0.05)
        made.append(coordinator)
        coordinator.start()
        return coordinator

    yield make, outbox
    for coordinator in made:
        coordinator.shutdown(5)


def opened(db, cid: int, name: str) -> int:
    """The component's active incident, opened now if it has none (the loop finds it by itself)."""
    with db.read() as session:
        existing = session.scalar(select(Incident.id).where(Incident.component_id == cid,
                                                            Incident.status != "resolved"))
    return existing or open_for(db, cid, name)


def executed(db, iid: int | None = None) -> list:
    return [r for r in journal_rows(db, iid) if r.executed]


def restart_plan(**plan) -> dict:
    return {"p": {"steps": [{"strategy": "restart", "params": {"command": ["svcctl", "{component.name}"]},
                             "attempts": 3}], **plan}}


def test_flapping_component_gets_at_most_one_action_per_episode(db, stubs: Stubs, failing, rig) -> None:
    stubs.make("svcctl")
    make, _ = rig
    plans = plan_set(restart_plan())
    health = ScriptedHealth()
    coordinator = make(plans, health)
    cid = add_component(db, "web", failing.url, plans=plans)
    health.set(cid, FLAPPING, episode=1)
    iid = opened(db, cid, "web")
    assert coordinator.wait_idle(20)
    assert len(executed(db, iid)) == 1
    assert incident(db, iid).status == "blocked" and "flap episode 1" in incident(db, iid).status_reason
    assert coordinator.wait_idle(20) and len(executed(db, iid)) == 1  # same episode: still nothing more
    health.set(cid, FLAPPING, episode=2)  # a new episode clears the block: one more action
    assert wait_for(lambda: len(executed(db, iid)) == 2, 20)
    assert coordinator.wait_idle(20)
    assert len(executed(db, iid)) == 2 and len(stubs.calls()) == 2


def test_mass_outage_takes_no_action_and_opens_one_mass_outage_incident(db, stubs: Stubs, failing, rig) -> None:
    stubs.make("svcctl")
    make, outbox = rig
    plans = plan_set(restart_plan(), notifications=NOTIFY)
    health = ScriptedHealth()
    coordinator = make(plans, health)
    ids = [add_component(db, f"c{i:02d}", failing.url, plans=plans) for i in range(20)]
    for cid in ids:
        health.set(cid, UP)
    for cid in ids[:12]:  # 60% down together
        health.set(cid, DOWN)
    incidents = [opened(db, cid, f"c{i:02d}") for i, cid in enumerate(ids[:12])]
    assert coordinator.wait_idle(30)
    assert stubs.calls() == [] and executed(db) == []
    with db.read() as session:
        outages = session.scalars(select(Incident).where(Incident.kind == "mass_outage")).all()
    assert len(outages) == 1 and outages[0].status == "escalated" and "12 of 20" in outages[0].reason
    assert {incident(db, i).status for i in incidents} == {"blocked"}
    coordinator.notifier.flush(force=True)
    assert len(outbox.messages) == 1 and "mass outage" in outbox.messages[0][1]
    failing.set_mode("ok")
    for cid in ids:  # the fleet comes back: the mass outage closes, blocked incidents verify and close
        health.set(cid, UP)
    assert wait_for(lambda: {incident(db, i).status for i in incidents} == {"resolved"}, 20)
    assert coordinator.wait_idle(10)
    assert incident(db, outages[0].id).status == "resolved"
    assert {incident(db, i).resolution for i in incidents} == {"self"} and executed(db) == []


def test_dependency_down_acts_only_on_the_root_and_unblocks_dependents_when_it_recovers(
        db, stubs: Stubs, failing, rig) -> None:
    stubs.make("svcctl")
    make, _ = rig
    plans = plan_set({"p": {"steps": [{"strategy": "restart", "params": {"command": ["svcctl", "{component.name}"]},
                                       "attempts": 1}]}})
    health = ScriptedHealth()
    coordinator = make(plans, health)
    with LoopbackHTTPServer("ok") as root_server:
        root = add_component(db, "db", root_server.url, plans=plans)
        kids = [add_component(db, name, failing.url, plans=plans, depends_on=("db",)) for name in ("api", "web")]
        for cid in (root, *kids):
            health.set(cid, DOWN)
        root_incident = opened(db, root, "db")
        kid_incidents = [opened(db, cid, name) for cid, name in zip(kids, ("api", "web"), strict=True)]
        # the root's verified recovery reports it UP, which clears its dependents' block
        assert wait_for(lambda: {incident(db, i).status for i in kid_incidents} == {"escalated"}, 20)
        assert coordinator.wait_idle(20)
    assert stubs.calls()[0] == ["db"] and incident(db, root_incident).resolution == "auto"
    assert sorted(c[0] for c in stubs.calls()) == ["api", "db", "web"]
    for iid in kid_incidents:  # blocked by the root first; then acted on, and escalated: their endpoints fail
        with db.read() as session:
            blocks = list(session.scalars(select(IncidentEventRow.reason).where(
                IncidentEventRow.incident_id == iid, IncidentEventRow.kind == "blocked")))
        assert blocks and blocks[0].startswith("dependency down: db")
        # the skipped look used no attempt number: the one action is attempt 1
        assert [(r.attempt, r.executed) for r in journal_rows(db, iid)] == [(1, True)]


def test_a_dependent_fixed_while_blocked_is_looked_at_fresh_not_restarted(db, stubs: Stubs, rig) -> None:
    """Found by the soak (seed 3): an incident blocked by a guard that says nothing about its own
    component (here the dependency; the blast radius in the soak) acted as soon as the block lifted,
    on a component fixed by hand meanwhile, because the health view of a DOWN component is as old as its
    probe backoff (min(30 s, 5 × interval)). Now the run coming back from such a block checks fresh:
    healthy → resolved ``self``, no action (invariant 5)."""
    stubs.make("svcctl")
    make, _ = rig
    plans = plan_set({"p": {"steps": [{"strategy": "restart", "params": {"command": ["svcctl", "{component.name}"]},
                                       "attempts": 1}]}})
    health = ScriptedHealth()
    with LoopbackHTTPServer("ok") as root_server, LoopbackHTTPServer("500") as kid_server:
        root = add_component(db, "db", root_server.url, plans=plans)
        kid = add_component(db, "api", kid_server.url, plans=plans, depends_on=("db",))
        for cid in (root, kid):
            health.set(cid, DOWN)
        kid_incident = opened(db, kid, "api")
        coordinator = make(plans, health)
        assert wait_for(lambda: incident(db, kid_incident).status == "blocked", 20)
        kid_server.set_mode("ok")  # fixed by hand; the view still says DOWN (no probe since)
        root_incident = opened(db, root, "db")  # the root's verified restart reports it UP: the block lifts
        assert wait_for(lambda: incident(db, kid_incident).status == "resolved", 20)
        assert coordinator.wait_idle(20)
    assert stubs.calls() == [["db"]] and incident(db, root_incident).resolution == "auto"
    assert incident(db, kid_incident).resolution == "self"
    assert "after guard dependency" in incident(db, kid_incident).status_reason


def test_a_blocked_incident_woken_before_its_next_attempt_still_names_its_guard(db, stubs: Stubs, failing,
                                                                               rig) -> None:
    """Found by the soak (PostgreSQL seed 3, the EMERGENCY override, a daemon restarted): a blocked
    incident a new daemon inherits is looked at fresh at once, and when its next attempt was still ahead
    the run ended "checked fresh; waiting for its next attempt" and it stayed ``blocked``: a blocked
    incident that named no guard, for as long as the guard held (invariant 2). Now it keeps saying which
    guard holds it until that attempt, when the guards judge afresh (so does one whose run only waited
    for its settle window: SQLite seed 1)."""
    stubs.make("svcctl")
    make, _ = rig
    plans = plan_set(restart_plan())
    health = ScriptedHealth()
    root = add_component(db, "db", failing.url, plans=plans)
    kid = add_component(db, "api", failing.url, plans=plans, depends_on=("db",))
    health.set(root, DOWN)  # the dependency is still down: only the start-up look wakes the incident
    health.set(kid, DOWN)
    iid = open_for(db, kid, "api")
    reason = "dependency down: db (the root gets the action)"
    assert records.block(db, iid, reason=reason, guard="dependency", blocked_by="db", blocked_by_id=root,
                         now=SYSTEM_CLOCK.now(), seen={"blocked_state": "down"})
    why, next_attempt = f"guard dependency: {reason}", SYSTEM_CLOCK.now() + timedelta(minutes=5)
    with db.write() as session:  # what a run's release wrote when it was blocked after a failed attempt
        session.execute(update(Incident).where(Incident.id == iid).values(waiting_for=why,
                                                                          next_attempt_at=next_attempt))
    coordinator = make(plans, health)
    assert wait_for(lambda: incident(db, iid).run_epoch > 0 and incident(db, iid).run_owner is None, 20)
    assert coordinator.wait_idle(20)
    got = incident(db, iid)
    assert (got.status, got.waiting_for) == ("blocked", why)
    assert got.waiting_until is not None and abs(got.waiting_until.replace(tzinfo=None) - next_attempt.replace(
        tzinfo=None)) < timedelta(seconds=1)
    assert stubs.calls() == []


def test_budget_trip_escalates_and_notifies(db, stubs: Stubs, failing, rig) -> None:
    stubs.make("svcctl")
    make, outbox = rig
    plans = plan_set(restart_plan(budget={"max_actions": 2, "window": "1h"}), notifications=NOTIFY)
    health = ScriptedHealth()
    coordinator = make(plans, health)
    cid = add_component(db, "web", failing.url, plans=plans)
    health.set(cid, DOWN)
    iid = opened(db, cid, "web")
    assert coordinator.wait_idle(20)
    assert len(stubs.calls()) == 2
    assert incident(db, iid).status == "escalated" and "budget spent" in incident(db, iid).status_reason
    coordinator.notifier.flush(force=True)
    assert "escalated" in outbox.messages[0][0] + outbox.messages[0][1] and "budget" in outbox.messages[0][1]


def test_breaker_opens_after_threshold_exhausted_plans_then_blocks_and_notifies(db, stubs: Stubs, failing,
                                                                                 rig) -> None:
    stubs.make("svcctl")
    make, outbox = rig
    plans = plan_set(restart_plan(), notifications=NOTIFY, limits={"breaker": {"threshold": 1}})
    health = ScriptedHealth()
    coordinator = make(plans, health)
    cid = add_component(db, "web", failing.url, plans=plans)
    health.set(cid, DOWN)
    first = opened(db, cid, "web")
    assert coordinator.wait_idle(20) and incident(db, first).status == "escalated"
    with db.write() as session:  # it recovered by itself meanwhile; then fails again
        resolve(session, session.get(Incident, first), at=datetime.now(UTC), resolution=Resolution.SELF)
        assert session.get(Component, cid).breaker["state"] == "open"
    second = open_for(db, cid, "web")
    assert coordinator.wait_idle(20)
    assert len(stubs.calls()) == 3  # only the first plan's attempts
    assert incident(db, second).status == "escalated" and "breaker open" in incident(db, second).status_reason
    coordinator.notifier.flush(force=True)
    assert "breaker open" in outbox.messages[-1][1]


def test_settle_comes_from_limits_settle_follows_a_reload_and_an_explicit_value_wins(db) -> None:
    plans = plan_set(restart_plan(), limits={"settle": "250ms"})
    coordinator = RecoveryCoordinator(db, plans, health=ScriptedHealth())
    try:
        assert coordinator.settle == 0.25
        coordinator.reload(plan_set(restart_plan(), limits={"settle": 0}))
        assert coordinator.settle == 0.0
        coordinator.reload(plan_set(restart_plan()))
        assert coordinator.settle == 2.0  # the documented default
    finally:
        coordinator.shutdown(5)
    fixed = RecoveryCoordinator(db, plans, health=ScriptedHealth(), settle_s=0.0)
    try:
        assert fixed.settle == 0.0
    finally:
        fixed.shutdown(5)


def test_runs_settle_together_and_at_most_max_concurrent_recoveries_act_at_once(db, tmp_path) -> None:
    """A burst of failures acts in waves of the limit, and a slot is held only while the action runs:
    verification after it holds none (the stub logs when each action starts and ends)."""
    import json
    import sys

    log = tmp_path / "actions.log"
    stub = tmp_path / "svcctl"
    stub.write_text(f"#!{sys.executable} -S\nimport json, sys, time\nstart = time.time()\ntime.sleep(0.3)\n"
                    f"open({str(log)!r}, 'a').write(json.dumps([sys.argv[1], start, time.time()]) + '\\n')\n")
    stub.chmod(0o755)
    plans = plan_set({"p": {"steps": [{"strategy": "restart", "params": {"command": [str(stub), "{component.name}"]},
                                       "attempts": 1, "verify": {"interval": "1s", "successes": 2}}]}},
                     limits={"max_concurrent_recoveries": 2, "settle": "2s", "min_components": 100})
    health = ScriptedHealth()
    coordinator = RecoveryCoordinator(db, plans, health=health, tick_s=0.05)
    coordinator.start()
    try:
        with LoopbackHTTPServer("ok") as healthy:
            for i in range(4):
                cid = add_component(db, f"web{i}", healthy.url, plans=plans)
                health.set(cid, DOWN)
                opened(db, cid, f"web{i}")
            assert wait_for(lambda: log.exists() and len(log.read_text().splitlines()) == 4, 30)
            assert coordinator.wait_idle(30)
    finally:
        coordinator.shutdown(5)
    actions = sorted((start, end, name) for name, start, end in map(json.loads, log.read_text().splitlines()))
    assert max(sum(1 for s, f, _ in actions if s <= start < f) for start, _, _ in actions) <= 2
    # the second wave started before the first wave's verification (two passes 1 s apart) was over
    verified = {r.component_id: r.finished_at.timestamp() for r in executed(db)}
    with db.read() as session:
        ids = dict(session.execute(select(Component.name, Component.id)).all())
    assert actions[2][0] < min(verified[ids[name]] for _, _, name in actions[:2])
    assert len(verified) == 4


def test_incidents_blocked_for_want_of_a_plan_are_worked_on_when_the_plan_comes_back(db, stubs: Stubs, rig,
                                                                                    tmp_path) -> None:
    """Regression: a reload that dropped a plan stopped automation, and restoring it did not resume
    the open incidents."""
    flag = tmp_path / "repaired"
    stubs.make("svcctl", touch=flag)  # the restart repairs the service
    make, _ = rig
    with_plan = plan_set({"p": {"steps": [{"strategy": "restart", "params": {"command": ["svcctl"]}}]}})
    without = plan_set({"other": {"steps": [{"strategy": "wait"}]}})
    health = ScriptedHealth()
    with RepairableServer(flag) as server:  # still broken when the plan comes back: looked at, then acted on
        cid = add_component(db, "web", server.url, plans=with_plan)
        health.set(cid, DOWN)
        coordinator = make(without, health)  # started with a plan file that lost plan "p"
        iid = opened(db, cid, "web")
        assert wait_for(lambda: incident(db, iid).status == "blocked", 10)
        assert "no plan" in incident(db, iid).status_reason and stubs.calls() == []
        coordinator.reload(with_plan)  # SIGHUP with the plan back
        assert wait_for(lambda: incident(db, iid).status == "resolved", 10)
    assert incident(db, iid).resolution == "auto" and stubs.calls() == [[]]
