"""Coordinator guards in action: flapping, mass outage, dependencies, budget and breaker (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from orchestrator.core.states import ComponentState, Resolution
from orchestrator.db.models import Component, Incident
from orchestrator.incidents.lifecycle import IncidentEvent, resolve
from orchestrator.incidents.notifier import Notifier
from orchestrator.recovery.coordinator import RecoveryCoordinator
from tests.servers import LoopbackHTTPServer
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
        coordinator = RecoveryCoordinator(db, plans, health=health, settle_s=0.0, notifier=notifier)
        made.append(coordinator)
        return coordinator

    yield make, outbox
    for coordinator in made:
        coordinator.shutdown(5)


def opened(coordinator: RecoveryCoordinator, db, cid: int, name: str, kind: str = "opened") -> int:
    with db.read() as session:
        existing = session.scalar(select(Incident.id).where(Incident.component_id == cid,
                                                            Incident.status != "resolved"))
    iid = existing or open_for(db, cid, name)
    coordinator.on_incident(IncidentEvent(kind, iid, cid, name, datetime.now(UTC)))
    return iid


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
    iid = opened(coordinator, db, cid, "web")
    assert coordinator.wait_idle(20)
    assert len(executed(db, iid)) == 1
    assert incident(db, iid).status == "blocked" and "flap episode 1" in incident(db, iid).reason
    opened(coordinator, db, cid, "web", kind="reopened")  # same episode: still nothing more
    assert coordinator.wait_idle(20) and len(executed(db, iid)) == 1
    health.set(cid, FLAPPING, episode=2)
    opened(coordinator, db, cid, "web", kind="reopened")
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
    incidents = [opened(coordinator, db, cid, f"c{i:02d}") for i, cid in enumerate(ids[:12])]
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
    coordinator.on_state(ids[0], UP)
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
        root_incident = opened(coordinator, db, root, "db")
        kid_incidents = [opened(coordinator, db, cid, name) for cid, name in zip(kids, ("api", "web"), strict=True)]
        assert coordinator.wait_idle(20)
        assert stubs.calls() == [["db"]] and incident(db, root_incident).resolution == "auto"
        for iid in kid_incidents:
            assert (incident(db, iid).status, incident(db, iid).blocked_by) == ("blocked", "db")
            assert journal_rows(db, iid)[0].skip_reason.startswith("dependency down: db")
        health.set(root, UP)
        coordinator.on_state(root, UP)
        assert coordinator.wait_idle(20)
    assert sorted(c[0] for c in stubs.calls()) == ["api", "db", "web"]
    assert {incident(db, i).status for i in kid_incidents} == {"escalated"}  # their endpoints still fail


def test_budget_trip_escalates_and_notifies(db, stubs: Stubs, failing, rig) -> None:
    stubs.make("svcctl")
    make, outbox = rig
    plans = plan_set(restart_plan(budget={"max_actions": 2, "window": "1h"}), notifications=NOTIFY)
    health = ScriptedHealth()
    coordinator = make(plans, health)
    cid = add_component(db, "web", failing.url, plans=plans)
    health.set(cid, DOWN)
    iid = opened(coordinator, db, cid, "web")
    assert coordinator.wait_idle(20)
    assert len(stubs.calls()) == 2
    assert incident(db, iid).status == "escalated" and "budget spent" in incident(db, iid).reason
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
    first = opened(coordinator, db, cid, "web")
    assert coordinator.wait_idle(20) and incident(db, first).status == "escalated"
    with db.write() as session:  # it recovered by itself meanwhile; then fails again
        resolve(session, session.get(Incident, first), at=datetime.now(UTC), resolution=Resolution.SELF)
        assert session.get(Component, cid).breaker["state"] == "open"
    second = open_for(db, cid, "web")
    coordinator.on_incident(IncidentEvent("opened", second, cid, "web", datetime.now(UTC)))
    assert coordinator.wait_idle(20)
    assert len(stubs.calls()) == 3  # only the first plan's attempts
    assert incident(db, second).status == "escalated" and "breaker open" in incident(db, second).reason
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


def test_runs_settle_together_and_at_most_max_concurrent_recoveries_act_at_once(db, stubs: Stubs) -> None:
    """A burst of failures waits out one settle window together, then acts in waves of the limit (a
    settling run holds no slot, so it never delays the acting ones behind it by a whole settle)."""
    stubs.make("svcctl", sleep_s=0.3)
    plans = plan_set(restart_plan(), limits={"max_concurrent_recoveries": 2, "settle": "2s",
                                             "max_unhealthy_fraction": 1})
    health = ScriptedHealth()
    coordinator = RecoveryCoordinator(db, plans, health=health)
    try:
        with LoopbackHTTPServer("ok") as healthy:
            for i in range(4):
                cid = add_component(db, f"web{i}", healthy.url, plans=plans)
                health.set(cid, DOWN)
                opened(coordinator, db, cid, f"web{i}")
            assert coordinator.wait_idle(30)
    finally:
        coordinator.shutdown(5)
    rows = executed(db)
    assert len(rows) == 4 and len(stubs.calls()) == 4
    spans = sorted((r.claimed_at, r.finished_at) for r in rows)
    assert max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans) <= 2
    # one settle for all four: the last wave starts one action after the first, not a settle later
    assert (spans[-1][0] - spans[0][0]).total_seconds() < 1.5
