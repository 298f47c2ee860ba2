"""The look around before acting: a lone failure acts at once, a shared one waits the settle window."""

from __future__ import annotations

import random
import time

import pytest

from orchestrator.core.states import ComponentState
from orchestrator.recovery.coordinator import RecoveryCoordinator
from orchestrator.recovery.fleet_probe import looks_isolated
from tests.servers import LoopbackHTTPServer
from tests.test_recovery_support import (
    ScriptedHealth,
    Stubs,
    add_component,
    open_for,
    plan_set,
    stubs_fixture,  # noqa: F401 - the `stubs` fixture
)


@pytest.fixture
def servers():
    with LoopbackHTTPServer("ok") as healthy, LoopbackHTTPServer("500") as failing:
        yield healthy, failing


def test_lone_failure_in_a_healthy_fleet_is_isolated(db, servers) -> None:
    healthy, failing = servers
    victim = add_component(db, "victim", failing.url, plan=None)
    for i in range(8):
        add_component(db, f"ok{i}", healthy.url, plan=None)
    assert looks_isolated(db, victim, random.Random(1))


def test_failing_dependency_is_not_isolated(db, servers) -> None:
    healthy, failing = servers
    add_component(db, "database", failing.url, plan=None)
    victim = add_component(db, "api", failing.url, plan=None, depends_on=("database",))
    for i in range(8):
        add_component(db, f"ok{i}", healthy.url, plan=None)
    assert not looks_isolated(db, victim, random.Random(1))


def test_much_of_the_fleet_failing_is_not_isolated(db, servers) -> None:
    healthy, failing = servers
    victim = add_component(db, "victim", failing.url, plan=None)
    for i in range(10):
        add_component(db, f"c{i}", failing.url if i < 4 else healthy.url, plan=None)
    assert not looks_isolated(db, victim, random.Random(1))  # 40% of the others fail


def test_coordinator_acts_without_waiting_when_the_failure_is_isolated(db, servers, stubs: Stubs) -> None:
    healthy, failing = servers
    stubs.make("svcctl")
    plans = plan_set({"p": {"steps": [{"strategy": "restart", "attempts": 1,
                                       "params": {"command": ["svcctl", "{component.name}"]}}]}})
    victim = add_component(db, "victim", failing.url, plans=plans)
    for i in range(6):
        add_component(db, f"ok{i}", healthy.url, plans=plans)
    health = ScriptedHealth()
    health.set(victim, ComponentState.DOWN)
    coordinator = RecoveryCoordinator(db, plans, health=health, settle_s=60.0, tick_s=0.05)
    coordinator.start()
    try:
        open_for(db, victim, "victim")
        deadline = time.monotonic() + 20
        while stubs.calls() != [["victim"]]:  # with the 60 s settle window this would not happen in time
            assert time.monotonic() < deadline, "the isolated failure waited the settle window"
            time.sleep(0.05)
    finally:
        coordinator.shutdown(5)
