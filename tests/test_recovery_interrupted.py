"""Interrupted recoveries end in an action or a person, and the record says what happened.

Real daemons (processes, or the daemon in a thread where the test cuts its database), real loopback
services only a restart repairs, a stub restart command logging its argv. Each test is one defect of
issue 14 that used to happen: a crash that killed the restart command too used up the plan; a
component removed mid-step left its incident open and its journal row ``running``; a pause used up
an attempt number and its resume acted on a component already fixed; a daemon stopped (SIGSTOP)
while its command finished journaled ``timed_out``; "owner died" written when the owner only lost its
database; a flap's good phase credited to a restart as ``auto``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.components.registry import INDEFINITELY, Registry
from orchestrator.core.states import IncidentStatus
from orchestrator.db.engine import Database
from orchestrator.db.models import Incident, IncidentEventRow, JournalEntry
from orchestrator.incidents import status as incident_status
from orchestrator.recovery import runs
from tests.daemon_helpers import poll, scalar
from tests.fault_rig import (
    RepairableServer,
    Stub,
    history,
    incidents,
    plan_file,
    problems,
    settled,
    start_daemon,
    up,
)
from tests.servers import LoopbackHTTPServer
from tests.test_recovery_faults import SETTLE_S, register, rig
from tests.test_recovery_support import add_component, open_for, plan_set


def _journal(db: Database) -> list[JournalEntry]:
    with db.read() as session:
        return list(session.scalars(select(JournalEntry).order_by(JournalEntry.step_index, JournalEntry.attempt)))


def _stop(daemon) -> None:
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(20)


def test_a_crash_that_kills_the_restart_command_too_does_not_use_up_the_plan(db, db_url, tmp_path) -> None:
    """Defect 3: the daemon and its running restart command killed together (the shipped unit's
    KillMode=mixed on a watchdog kill); the next daemon found the attempt ``interrupted``, checked fresh
    (still broken) and escalated "plan exhausted" with 1 of 3 attempts used. Now the next attempt runs."""
    _flag, stub, plans = rig(tmp_path, attempts=3, timeout="30s")
    with RepairableServer(_flag) as server:
        register(db, server.url)
        daemon = start_daemon(db_url, plans, tmp_path)
        try:
            poll(lambda: up(db), 30)
            stub.behave(sleep_s=60)
            server.breaks()
            [action] = poll(stub.actions, 30)
            group = os.getpgid(action["pid"])
            daemon.kill()  # the whole unit dies at once: the daemon and every process it started
            os.killpg(group, signal.SIGKILL)
            daemon.wait(10)
            stub.behave()  # the next restart repairs at once
            daemon = start_daemon(db_url, plans, tmp_path)
            poll(lambda: settled(db), SETTLE_S)
        finally:
            _stop(daemon)
    [incident] = incidents(db)
    assert (incident.status, incident.resolution) == ("resolved", "auto"), history(db, stub)
    assert [a["attempt"] for a in stub.actions()] == ["1", "2"]
    first, second = _journal(db)
    assert first.status == "failed" and first.verification["interrupted"] and "owner died" in first.detail
    assert second.status == "succeeded"
    assert problems(db, stub) == []


#: rounds of the SIGSTOP test: which thread runs first after SIGCONT is up to the scheduler (a third
#: break-fix cycle within the tracker's flap window would make the service flapping)
STOP_ROUNDS = 2


def test_a_daemon_stopped_while_its_command_finishes_journals_what_the_command_did(db, db_url, tmp_path) -> None:
    """Defect 8: SIGSTOP during a restart that finished meanwhile → journal ``timed_out`` and the
    incident ``resolved self`` although the command did restart the service. Stopped here for longer
    than the step's timeout and its grace; the command finishes while the daemon is stopped."""
    _flag, stub, plans = rig(tmp_path, attempts=1, timeout="1s")
    with RepairableServer(_flag) as server:
        register(db, server.url)
        daemon = start_daemon(db_url, plans, tmp_path)
        try:
            for round_no in range(STOP_ROUNDS):
                poll(lambda: up(db) and settled(db), 30)
                gate = tmp_path / f"gate-{round_no}"
                stub.behave(gate=gate)
                server.breaks()
                poll(lambda n=round_no: len(stub.actions()) > n, 30)
                daemon.send_signal(signal.SIGSTOP)
                try:
                    gate.touch()
                    poll(server.healthy, 10)  # the command ran to its end and repaired the service
                    time.sleep(4.0)  # the fault: stopped past the 1 s timeout and its 2 s grace
                finally:
                    daemon.send_signal(signal.SIGCONT)
                poll(lambda: settled(db), SETTLE_S)
        finally:
            _stop(daemon)
    assert [(r.status, i.resolution) for r, i in zip(_journal(db), incidents(db), strict=True)] == [
        ("succeeded", "auto")] * STOP_ROUNDS, history(db, stub)
    assert len(stub.actions()) == STOP_ROUNDS


def test_a_daemon_stopped_cleanly_mid_step_is_not_said_to_have_died(db, db_url, tmp_path) -> None:
    """Found by the soak (SQLite seed 1): a daemon stopped by SIGTERM while its restart ran left the row
    to the next one, which journaled the attempt "after its owner died" (its instance row said it had
    stopped). Now the record says the owner stopped."""
    flag, stub, plans = rig(tmp_path, attempts=1)
    with RepairableServer(flag) as server:
        register(db, server.url)
        daemon = start_daemon(db_url, plans, tmp_path)
        try:
            poll(lambda: up(db), 30)
            stub.behave(repair=False)  # exits 0 at once; the verification then waits for a healthy service
            server.breaks()
            poll(stub.actions, 30)
            _stop(daemon)  # SIGTERM while it verifies: the row is left to the next owner
            daemon = start_daemon(db_url, plans, tmp_path)
            poll(lambda: settled(db), SETTLE_S)
        finally:
            _stop(daemon)
    row = [r for r in _journal(db) if r.executed][0]
    assert "owner died" not in (row.detail or "") and "its owner stopped" in (row.detail or ""), history(db, stub)


def test_a_component_removed_mid_step_closes_its_incident_and_settles_the_attempt(db, db_url, tmp_path) -> None:
    """Defect 5: removed while its restart ran → ``AttributeError: 'NoneType' object has no attribute
    'check_spec'``, the journal row left ``running`` and the incident ``open`` forever."""
    _flag, stub, plans = rig(tmp_path)
    gate = tmp_path / "gate"
    with RepairableServer(_flag) as server:
        register(db, server.url)
        daemon = start_daemon(db_url, plans, tmp_path)
        try:
            poll(lambda: up(db), 30)
            stub.behave(gate=gate, repair=False)
            server.breaks()
            poll(stub.actions, 30)
            Registry(db).remove("svc")
            gate.touch()
            poll(lambda: _removed(db)[0].status == "resolved" and _journal(db)[0].status != "running", 20)
        finally:
            _stop(daemon)
    [incident] = _removed(db)
    assert incident.resolution == "removed" and "removed" in incident.status_reason
    assert [r.status for r in _journal(db)] == ["abandoned"]
    assert "AttributeError" not in (tmp_path / "daemon.log").read_text()


def _removed(db: Database) -> list[Incident]:
    """Every incident (a removed component's have no component_id any more)."""
    with db.read() as session:
        return list(session.scalars(select(Incident).order_by(Incident.id)))


def test_removing_a_component_closes_its_escalated_incident(db) -> None:
    """Defect 5: an escalated incident outlived its component's removal (open on the page and in
    /metrics forever, and nothing a person could do closed it)."""
    cid = add_component(db, "gone", "http://127.0.0.1:9/health")
    iid = open_for(db, cid, "gone")
    with db.write() as session:
        incident_status.transition(session, iid, IncidentStatus.OPEN, IncidentStatus.ESCALATED,
                                   now=incidents(db)[0].opened_at, reason="plan exhausted")
    Registry(db).remove("gone")
    with db.read() as session:
        events = [(e.kind, e.resolution) for e in session.scalars(
            select(IncidentEventRow).where(IncidentEventRow.incident_id == iid).order_by(IncidentEventRow.id))]
    assert scalar(db, "SELECT status FROM incidents WHERE id = :i", i=iid) == "resolved"
    assert events[-1] == ("resolved", "removed")


#: checked every 2 s: the health plane's own next check is not what closes the incident after a resume
SLOW = {"interval": 2, "timeout": 0.5, "failure_threshold": 1}


def _paused_mid_step(db: Database, server: RepairableServer, stub: Stub, gate: Path) -> Registry:
    """The service breaks; paused while its restart runs, which then fails: the incident is blocked
    by the hold."""
    poll(lambda: up(db), 30)
    stub.behave(gate=gate, repair=False, exit=1)
    server.breaks()
    poll(stub.actions, 30)
    registry = Registry(db)
    registry.set_hold("svc", paused_until=INDEFINITELY, reason="by hand", pause=True)
    poll(lambda: scalar(db, "SELECT state FROM components") == "paused", 30)  # the daemon has seen it
    gate.touch()
    poll(lambda: scalar(db, "SELECT status FROM incidents") == "blocked", 30)
    return registry


def _pause_and_resume(db: Database, db_url: str, tmp_path: Path, while_paused) -> Stub:
    """A daemon; the service breaks and is paused mid-step; ``while_paused(flag, stub)``; resumed;
    everything settles. The stub, for its log."""
    flag, stub, plans = rig(tmp_path, attempts=3, backoff="1s")
    with RepairableServer(flag) as server:
        register(db, server.url, **SLOW)
        daemon = start_daemon(db_url, plans, tmp_path)
        try:
            registry = _paused_mid_step(db, server, stub, tmp_path / "gate")
            while_paused(flag, stub)
            registry.set_hold("svc", paused_until=None, reason=None, pause=False)
            poll(lambda: settled(db), SETTLE_S)
        finally:
            _stop(daemon)
    return stub


def test_a_pause_uses_no_attempt_and_resume_checks_fresh_before_acting(db, db_url, tmp_path) -> None:
    """Defect 5: paused mid-step (the attempt then failed), fixed by hand, resumed → the next attempt
    restarted a component that was already healthy, and the pause had used up an attempt number. Now
    the look during the pause keeps no number, and the resume is followed by a fresh check: ``self``."""
    stub = _pause_and_resume(db, db_url, tmp_path, lambda flag, _stub: flag.touch())  # fixed by hand
    [incident] = incidents(db)
    assert (incident.status, incident.resolution) == ("resolved", "self"), history(db, stub)
    assert len(stub.actions()) == 1
    assert [r.attempt for r in _journal(db) if r.executed] == [1]


def test_a_pause_does_not_use_up_an_attempt_number(db, db_url, tmp_path) -> None:
    """Defect 5 (and 9: skipped attempts consumed attempt numbers): paused while attempt 1 ran (and
    failed), resumed still broken, the next action ran as attempt 3 (2 was the pause's look). Now as 2."""
    stub = _pause_and_resume(db, db_url, tmp_path, lambda _flag, stub: stub.behave())  # the next one repairs
    [incident] = incidents(db)
    assert (incident.status, incident.resolution) == ("resolved", "auto"), history(db, stub)
    assert [a["attempt"] for a in stub.actions()] == ["1", "2"]


class FlappingServer(LoopbackHTTPServer):
    """Healthy and failing in turns of ``phase_s`` by itself, whatever is done to it."""

    def __init__(self, phase_s: float) -> None:
        self.phase_s = phase_s
        super().__init__("ok")

    def _respond(self, h) -> None:
        self.set_mode("ok" if int(time.monotonic() / self.phase_s) % 2 else "500")
        super()._respond(h)


def test_a_flaps_good_phase_is_not_credited_to_a_restart(db, db_url, tmp_path) -> None:
    """Defect 8: a restart that did nothing, on a service flapping by itself, "verified" in a good
    phase and resolved ``auto``. Healing by a flap's good phase is ``self``."""
    stub = Stub(tmp_path, tmp_path / "unused-flag")
    gate = tmp_path / "gate"
    stub.behave(gate=gate, repair=False)
    plans = plan_file(tmp_path, stub, attempts=1, timeout="60s")
    with FlappingServer(0.25) as server:
        register(db, server.url, interval=0.1, timeout=0.05)
        daemon = start_daemon(db_url, plans, tmp_path)
        try:
            poll(stub.actions, 30)  # the restart started: it waits until the flapping is plain
            poll(lambda: scalar(db, "SELECT state FROM components") == "flapping", 30)
            gate.touch()
            poll(lambda: scalar(db, "SELECT count(*) FROM recovery_journal WHERE status <> 'running'") == 1, 30)
            # the run decided (the incident no longer recovering) on what its verification saw
            poll(lambda: scalar(db, "SELECT i.status FROM incidents i JOIN recovery_journal j "
                                    "ON j.incident_id = i.id") != "recovering", 20)
        finally:
            _stop(daemon)
    assert _resolutions(db) and "auto" not in _resolutions(db), history(db, stub)
    assert len(stub.actions()) == 1


def _resolutions(db: Database) -> list[str | None]:
    with db.read() as session:
        return list(session.scalars(select(IncidentEventRow.resolution).where(IncidentEventRow.kind == "resolved")
                                    .order_by(IncidentEventRow.id)))



def _rows(*verifications: dict) -> list[JournalEntry]:
    return [JournalEntry(step_index=0, attempt=n, executed=True, status="failed", verification=v)
            for n, v in enumerate(verifications, start=1)]


@pytest.mark.parametrize(("strategy", "rows", "done", "next_attempt"), [
    ("restart", [{"interrupted": True}], False, 2),  # a crash of ours is not one of the 3 attempts
    ("restart", [{"interrupted": True}, {}, {}], False, 4),
    ("restart", [{"interrupted": True}, {}, {}, {}], True, 5),  # 3 real attempts failed
    ("restart", [{"interrupted": True}] * 3, True, 4),  # a daemon dying every time still ends in a person
    ("notify", [{"interrupted": True}], True, 2),  # never verified, not idempotent: not repeated
], ids=["one-interrupted", "interrupted-plus-two", "three-failed", "three-interrupted", "notify"])
def test_interrupted_attempts_do_not_use_up_a_step_but_are_bounded(strategy, rows, done, next_attempt) -> None:
    """Defect 3 at the level of the step's position (the real-daemon test above is the regression)."""
    params = {"command": ["true"]} if strategy == "restart" else {"urls": ["json://127.0.0.1:9/x"]}
    step = plan_set({"p": {"steps": [{"strategy": strategy, "params": params, "attempts": 3}]}}).plans["p"].steps[0]
    pos = runs.position(_rows(*rows), 0, step, {}, step.make_strategy())
    assert (pos.done, pos.attempt) == (done, next_attempt)
