"""The plan executor end to end on SQLite and PostgreSQL: real loopback endpoints, stub executables."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.components.targets import effective_check
from orchestrator.components.views import component_views
from orchestrator.core.clock import FakeClock
from orchestrator.core.config import Switches
from orchestrator.core.states import AttemptStatus, ComponentState
from orchestrator.db.models import Component, Incident
from orchestrator.incidents import operator
from orchestrator.plans import PlanSet
from orchestrator.recovery import journal, runs
from orchestrator.recovery.coordinator import RecoveryCoordinator
from orchestrator.recovery.targets import component_view
from orchestrator.strategy import MAX_OUTPUT_CHARS
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


@pytest.fixture
def failing() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer("500") as server:
        yield server


@pytest.fixture
def healthy() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer("ok") as server:
        yield server


@pytest.fixture
def coordinators():
    made: list[RecoveryCoordinator] = []

    def make(db, plans, health, start: bool = True, **kw) -> RecoveryCoordinator:
        kw.setdefault("settle_s", 0.0)
        kw.setdefault("tick_s", 0.05)
        coordinator = RecoveryCoordinator(db, plans, health=health, **kw)
        made.append(coordinator)
        if start:
            coordinator.start()
        return coordinator

    yield make
    for coordinator in made:
        coordinator.shutdown(5)


def restart(command: list[str], **step) -> dict:
    return {"strategy": "restart", "params": {"command": command}, **step}


def start(db, coordinator: RecoveryCoordinator, health: ScriptedHealth, name: str, url: str, plans,
          **fields) -> tuple[int, int]:
    """Register a DOWN component and open its incident: the coordinator's loop finds it; (component, incident)."""
    cid = add_component(db, name, url, plans=plans, **fields)
    health.set(cid, ComponentState.DOWN)
    return cid, open_for(db, cid, name)


def test_restart_exits_0_but_endpoint_still_fails_records_failed_verification_then_next_step(
        db, stubs: Stubs, failing, coordinators) -> None:
    stubs.make("svcctl")
    stubs.make("promote")
    plans = plan_set({"p": {"steps": [restart(["svcctl", "restart", "{component.name}"], attempts=2),
                                      restart(["promote", "{component.name}"], attempts=1)]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health)
    _, iid = start(db, coordinator, health, "web", failing.url, plans)
    assert coordinator.wait_idle(20)
    rows = journal_rows(db, iid)
    assert [(r.step_index, r.attempt, r.status, r.executed) for r in rows] == [
        (0, 1, "failed_verification", True), (0, 2, "failed_verification", True), (1, 1, "failed_verification", True)]
    assert rows[0].verification["passed"] is False and rows[0].verification["probes"]
    assert stubs.calls() == [["restart", "web"], ["restart", "web"], ["web"]]
    closed = incident(db, iid)
    assert closed.status == "escalated" and closed.escalated_at is not None and closed.resolution is None
    with db.read() as session:
        assert session.get(Component, rows[0].component_id).breaker["consecutive_failures"] == 1


def test_verified_step_resolves_the_incident_auto_by_that_step(db, stubs: Stubs, healthy, coordinators) -> None:
    stubs.make("svcctl")
    plans = plan_set({"p": {"steps": [restart(["svcctl", "restart"])]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health)
    _, iid = start(db, coordinator, health, "web", healthy.url, plans)
    assert coordinator.wait_idle(20)
    closed = incident(db, iid)
    assert (closed.status, closed.resolution, closed.resolved_by_step) == ("resolved", "auto", 0)
    row = journal_rows(db, iid)[0]
    assert row.status == "succeeded" and row.verification["passed"] and row.verification["successes"] == 2
    assert row.owner == coordinator.owner and row.claimed_at is not None and row.finished_at is not None


def test_names_and_vars_with_shell_metacharacters_reach_the_command_as_literal_argv(
        db, stubs: Stubs, failing, coordinators) -> None:
    evil = "$(reboot) `id` | tee /etc/passwd && x; rm -rf / *"
    stubs.make("svcctl")
    plans = plan_set({"p": {"steps": [restart(["svcctl", "{component.name}", "{vars.unit}", "--x={vars.unit}"],
                                              attempts=1)]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health)
    start(db, coordinator, health, "web-1.a_b", failing.url, plans, vars={"unit": evil})
    assert coordinator.wait_idle(20)
    assert stubs.calls() == [["web-1.a_b", evil, f"--x={evil}"]]


def test_error_handling_disabled_journals_what_would_run_and_runs_nothing(db, stubs: Stubs, failing,
                                                                           coordinators) -> None:
    stubs.make("svcctl")
    plans = plan_set({"p": {"steps": [restart(["svcctl", "restart", "{component.name}"]),
                                      restart(["svcctl", "again"])]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health, switches=Switches(error_handling_enabled=False))
    _, iid = start(db, coordinator, health, "web", failing.url, plans)
    assert coordinator.wait_idle(20)
    rows = journal_rows(db, iid)
    assert [(r.step_index, r.status, r.executed) for r in rows] == [(0, "skipped", False), (1, "skipped", False)]
    assert rows[0].description == 'run ["svcctl", "restart", "web"]'
    assert "ERROR_HANDLING_ENABLED=false" in rows[0].skip_reason
    observed = incident(db, iid)
    assert stubs.calls() == [] and (observed.status, observed.details["guard"]) == ("blocked", "observe_only")
    assert coordinator.wait_idle(5) and len(journal_rows(db, iid)) == 2  # looked at once, not again every tick


def test_dry_run_recover_prints_the_rendered_plan_and_writes_nothing(db, stubs: Stubs, healthy, coordinators) -> None:
    """Regression: a dry run used to open (and count) an incident and send its notification."""
    from tests.conftest import snapshot

    stubs.make("svcctl")
    plans = plan_set({"p": {"steps": [restart(["svcctl", "{vars.unit}"])]}})
    add_component(db, "web", healthy.url, plans=plans, vars={"unit": "web.service"})
    before = snapshot(db)
    coordinator = coordinators(db, plans, ScriptedHealth(), start=False)
    lines = coordinator.dry_run("web")
    assert lines == ['step 0 (restart): would run ["svcctl", "web.service"]'] and stubs.calls() == []
    coordinator.shutdown(5)
    assert snapshot(db) == before


def test_approval_step_waits_for_approve_then_runs(db, stubs: Stubs, coordinators, tmp_path) -> None:
    flag = tmp_path / "repaired"
    stubs.make("promote", touch=flag)
    plans = plan_set({"p": {"steps": [restart(["promote"], approval={"required": True, "timeout": "1h"})]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health)
    with RepairableServer(flag) as broken:  # still broken when the approved step comes back: it acts
        _, iid = start(db, coordinator, health, "db1", broken.url, plans)
        assert wait_for(lambda: incident(db, iid).status == "awaiting_approval", 10)
        assert stubs.calls() == [] and journal_rows(db, iid) == []
        operator.approve(db, iid)
        assert wait_for(lambda: incident(db, iid).status == "resolved", 10)
    assert stubs.calls() == [[]] and incident(db, iid).approved_by


def test_approval_timeout_escalates_without_acting(db, stubs: Stubs, failing, coordinators) -> None:
    stubs.make("promote")
    clock = FakeClock(datetime.now(UTC))
    plans = plan_set({"p": {"steps": [restart(["promote"], approval={"required": True, "timeout": "15m"})]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health, clock=clock)
    _, iid = start(db, coordinator, health, "db1", failing.url, plans)
    assert wait_for(lambda: incident(db, iid).status == "awaiting_approval", 10)
    clock.advance(16 * 60)
    assert wait_for(lambda: incident(db, iid).status == "escalated", 10)
    assert stubs.calls() == [] and "approval" in incident(db, iid).status_reason


def test_failover_persists_the_active_target_and_the_check_follows_the_backup(
        db, stubs: Stubs, failing, healthy, coordinators) -> None:
    stubs.make("promote")
    plans = plan_set({"p": {"steps": [{"strategy": "failover", "params": {"command": ["promote", "{target_url}"]}}]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health)
    cid, iid = start(db, coordinator, health, "web", failing.url, plans, backup_url=healthy.url)
    assert coordinator.wait_idle(20)
    assert incident(db, iid).resolution == "auto" and stubs.calls() == [[healthy.url]]
    with db.read() as session:
        row = session.get(Component, cid)
        assert row.active_target == "backup" and effective_check(row).url == healthy.url
    assert journal_rows(db, iid)[0].facts["active_target"] == "backup"


def test_scale_facts_persist_replicas(db, stubs: Stubs, healthy, coordinators) -> None:
    stubs.make("scaler")
    plans = plan_set({"p": {"steps": [{"strategy": "scale_up", "params": {"command": ["scaler", "{replicas}"]}}]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health)
    cid, _ = start(db, coordinator, health, "api", healthy.url, plans, replicas=2, max_replicas=5)
    assert coordinator.wait_idle(20)
    with db.read() as session:
        row = session.get(Component, cid)
        assert (row.replicas, row.learned_replicas) == (2, 3)  # declared, learned
        assert component_view(row).replicas == 3
    assert stubs.calls() == [["3"]]


def test_apply_after_an_automatic_scale_up_keeps_the_replicas(db, stubs: Stubs, healthy, coordinators) -> None:
    """Regression (issue 16): re-applying the declarative definition used to write the declared
    replicas over the scale-up. Only a changed declaration replaces what recovery learned."""
    stubs.make("scaler")
    plans = plan_set({"p": {"steps": [{"strategy": "scale_up", "params": {"command": ["scaler", "{replicas}"]}}]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health)
    declared = {"replicas": 2, "max_replicas": 5, "vars": {"unit": "api.service"}}
    cid, _ = start(db, coordinator, health, "api", healthy.url, plans, **declared)
    assert coordinator.wait_idle(20)
    registry = Registry(db, plan_names={"p"})

    def apply(**fields) -> str:
        spec = ComponentSpec(name="api", url=healthy.url, plan="p", interval=10, timeout=1, **fields)
        return registry.apply([spec], prune=False)[0].action

    def replicas() -> tuple[int | None, int | None]:
        with db.read() as session:
            row = session.get(Component, cid)
            return row.replicas, component_view(row).replicas

    assert apply(**declared) == "unchanged"
    assert replicas() == (2, 3)  # the scale-up stands
    assert apply(**{**declared, "vars": {"unit": "api2.service"}}) == "update"
    assert replicas() == (2, 3)  # another field's change leaves it too
    assert apply(**{**declared, "replicas": 4}) == "update"
    assert replicas() == (4, 4)  # a new declaration of replicas is the operator's decision
    with db.read() as session:
        [view] = component_views(session, datetime.now(UTC), "api")
    assert view["replicas"] == 4 and view["learned"] == {"active_target": "primary", "replicas": None, "vars": {}}


def test_permanent_failure_moves_to_the_next_step_at_once(db, stubs: Stubs, healthy, coordinators) -> None:
    stubs.make("svcctl")
    plans = plan_set({"p": {"steps": [restart(["not-installed"], attempts=3), restart(["svcctl"])]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health)
    _, iid = start(db, coordinator, health, "web", healthy.url, plans)
    assert coordinator.wait_idle(20)
    rows = journal_rows(db, iid)
    assert [(r.step_index, r.status) for r in rows] == [(0, "failed"), (1, "succeeded")]
    assert "not found" in rows[0].detail and rows[0].verification["permanent"] is True


def test_output_is_redacted_and_capped_and_a_hang_is_timed_out(db, stubs: Stubs, failing, coordinators) -> None:
    stubs.make("noisy", exit_code=1, output="token=s3cr3t-value " + "x" * 40_000 + "\nhttps://u:hunter2@h/x\n")
    stubs.make("hang", sleep_s=30)
    plans = plan_set({"p": {"steps": [restart(["noisy"], attempts=1), restart(["hang"], attempts=1, timeout="300ms")]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health)
    _, iid = start(db, coordinator, health, "web", failing.url, plans)
    assert coordinator.wait_idle(20)
    noisy, hung = journal_rows(db, iid)
    assert noisy.status == "failed" and len(noisy.output) <= MAX_OUTPUT_CHARS
    assert "hunter2" not in noisy.output and "s3cr3t" not in (noisy.output + noisy.detail)
    assert hung.status == "timed_out"


def test_healed_between_attempts_is_resolved_self_never_credited_to_the_failed_attempt(
        db, stubs: Stubs, coordinators) -> None:
    """Regression: attempt 1 failed (exit 1), the component was healthy before attempt 2, and the
    incident was closed ``auto``, credited to the failed action."""
    stubs.make("svcctl", exit_code=1)
    plans = plan_set({"p": {"steps": [restart(["svcctl"], attempts=2, backoff={"base": "300ms", "cap": "300ms"})]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health)
    with LoopbackHTTPServer("500") as server:
        cid, iid = start(db, coordinator, health, "web", server.url, plans)
        assert wait_for(lambda: stubs.calls() == [[]], 10)
        server.set_mode("ok")  # fixed by hand meanwhile
        health.set(cid, ComponentState.UP)
        assert wait_for(lambda: incident(db, iid).status == "resolved", 10)
    closed = incident(db, iid)
    assert (closed.resolution, closed.resolved_by_step) == ("self", None) and stubs.calls() == [[]]
    assert "healthy again before step 0 attempt 2" in closed.status_reason



def _left_open(db, stubs: Stubs, server: LoopbackHTTPServer) -> tuple[PlanSet, ScriptedHealth, int, int]:
    """A component with a restart plan whose incident an earlier process left open; its live view says
    DOWN. Returns (plans, health, component id, incident id)."""
    stubs.make("svcctl")
    plans = plan_set({"p": {"steps": [restart(["svcctl"])]}})
    health = ScriptedHealth()
    cid = add_component(db, "web", server.url, plans=plans)
    health.set(cid, ComponentState.DOWN)
    return plans, health, cid, open_for(db, cid, "web")


def test_an_incident_found_at_start_is_checked_fresh_before_anything_acts(db, stubs: Stubs, healthy,
                                                                          coordinators) -> None:
    """Left open by an earlier process, its component healthy now (the live view still says DOWN):
    one real check, resolved ``self`` with the reason, no action — at once, not at its retry time."""
    plans, health, cid, iid = _left_open(db, stubs, healthy)
    with db.write() as session:  # waiting for a retry an hour away when the process stopped
        session.get(Incident, iid).next_attempt_at = datetime.now(UTC) + timedelta(hours=1)
    coordinators(db, plans, health)  # starts: the incident is inherited
    assert wait_for(lambda: incident(db, iid).status == "resolved", 10)
    closed = incident(db, iid)
    assert (closed.resolution, closed.status_reason) == ("self", "healthy when picked up after restart")
    assert stubs.calls() == [] and health.state(cid) is ComponentState.UP  # the passes were reported


def test_a_verified_attempt_whose_owner_died_before_resolving_is_credited_at_start(db, stubs: Stubs, healthy,
                                                                                   coordinators) -> None:
    """Regression: the owner journaled attempt 1 ``succeeded`` (acted, verified) and died before it
    could resolve the incident; the next process checked fresh and closed it ``self``, contradicting
    its own journal. Now: healthy when picked up → ``auto`` by that step, and nothing runs again."""
    plans, health, cid, iid = _left_open(db, stubs, healthy)
    now = datetime.now(UTC)
    with db.write() as session:  # the dead owner's run, as it left it
        runs.start(session, session.get(Incident, iid), "p", manual=False, now=now)
    entry = journal.claim(db, incident_id=iid, component_id=cid, step_index=0, attempt=1, strategy="restart",
                          owner="dead", now=now)
    journal.finish(db, entry, status=AttemptStatus.SUCCEEDED, now=now, detail="restarted",
                   verification={"passed": True})
    coordinators(db, plans, health)  # starts: the incident is inherited
    assert wait_for(lambda: incident(db, iid).status == "resolved", 10)
    closed = incident(db, iid)
    assert (closed.resolution, closed.resolved_by_step) == ("auto", 0)
    assert closed.status_reason.startswith("step 0 attempt 1 verified before its owner died")
    assert stubs.calls() == [] and [r.status for r in journal_rows(db, iid)] == ["succeeded"]


def test_a_component_turning_flapping_while_its_restart_verifies_is_credited_to_the_restart(
        db, stubs: Stubs, healthy, coordinators) -> None:
    """Regression (the 30-minute soak, both databases: resolved ``self`` although attempt 1 restarted it):
    a component DOWN when its attempt was claimed and still when the restart ended, whose recovery then
    tipped the flap window (earlier breaks and fixes) into FLAPPING while it verified, was resolved
    ``self`` as if a flap's good phase had healed it. The restart did: ``auto``."""
    stubs.make("svcctl")
    plans = plan_set({"p": {"steps": [restart(["svcctl"], verify={"interval": "1s", "successes": 3,
                                                                             "deadline": "10s"})]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health)
    cid, iid = start(db, coordinator, health, "web", healthy.url, plans)
    assert wait_for(lambda: any((r.verification or {}).get("action") for r in journal_rows(db, iid)), 10)
    health.set(cid, ComponentState.FLAPPING)  # verifying: its passes need 2 s more
    assert wait_for(lambda: incident(db, iid).status == "resolved", 10)
    assert (incident(db, iid).resolution, incident(db, iid).resolved_by_step) == ("auto", 0), incident(db, iid)


def test_a_component_flapping_by_the_time_its_restart_ended_heals_by_itself(
        db, stubs: Stubs, healthy, coordinators) -> None:
    stubs.make("svcctl", sleep_s=2)
    plans = plan_set({"p": {"steps": [restart(["svcctl"])]}})
    health = ScriptedHealth()
    coordinator = coordinators(db, plans, health)
    cid, iid = start(db, coordinator, health, "web", healthy.url, plans)
    assert wait_for(lambda: stubs.calls() != [], 10)
    health.set(cid, ComponentState.FLAPPING)  # while the command runs: the flap is the component's own
    assert wait_for(lambda: incident(db, iid).status == "resolved", 15)
    assert incident(db, iid).resolution == "self" and "flapping" in incident(db, iid).status_reason


def test_a_service_fixed_by_hand_while_its_retry_waits_is_not_restarted(
        db, stubs: Stubs, coordinators, tmp_path) -> None:
    """Regression (the 30-minute soak, PostgreSQL: a restart of a component answering when it was picked
    up): after a wait (here attempt 1's backoff) the run acted on the health view, which for a DOWN
    component is as old as its probe backoff (up to min(30 s, 5 × interval)); a service fixed by hand
    meanwhile was restarted. Back from a wait, the run looks with a real check first."""
    flag = tmp_path / "repaired"
    stubs.make("svcctl")  # exits 0 and repairs nothing: attempt 1 fails its verification
    plans = plan_set({"p": {"steps": [restart(["svcctl"], attempts=2, backoff={"base": "2s", "cap": "2s"})]}})
    health = ScriptedHealth()  # says DOWN throughout: the view has not probed again yet
    coordinator = coordinators(db, plans, health)
    with RepairableServer(flag) as server:
        _, iid = start(db, coordinator, health, "web", server.url, plans)
        assert wait_for(lambda: [r.status for r in journal_rows(db, iid)] == ["failed_verification"], 10)
        flag.touch()  # fixed by hand while attempt 2 waits its backoff
        assert wait_for(lambda: incident(db, iid).status == "resolved", 15)
    assert stubs.calls() == [[]], "the service was answering when attempt 2 was picked up"
    assert incident(db, iid).resolution == "self" and "looked at fresh" in incident(db, iid).status_reason


def test_a_first_attempt_picked_up_late_looks_fresh_before_it_restarts(db, stubs: Stubs, coordinators,
                                                                      healthy) -> None:
    """Regression (the 30-minute PostgreSQL soak: a restart of a component fixed by hand 3.5 s before):
    the database was away when the component turned DOWN, so its incident was written 6 s late, and the
    first attempt acted on the view of a DOWN component as old as its probe backoff. A first attempt
    picked up more than max(3 s, 2 intervals) after the component turned DOWN looks with a real check."""
    from sqlalchemy import update

    stubs.make("svcctl")
    plans = plan_set({"p": {"steps": [restart(["svcctl"], attempts=1)]}})
    health = ScriptedHealth()  # says DOWN: the view has not probed again since
    coordinators(db, plans, health)
    cid = add_component(db, "web", healthy.url, plans=plans)
    with db.write() as session:  # it turned DOWN 30 s ago (3 intervals), the incident is written only now
        session.execute(update(Component).where(Component.id == cid).values(
            state="down", state_since=datetime.now(UTC) - timedelta(seconds=30)))
    health.set(cid, ComponentState.DOWN)
    iid = open_for(db, cid, "web")  # opened while the loop runs: not one found at start-up
    assert wait_for(lambda: incident(db, iid).status == "resolved", 15)
    assert stubs.calls() == [], "the service was answering when its late incident was picked up"
    assert incident(db, iid).resolution == "self" and "picked up late" in incident(db, iid).status_reason
