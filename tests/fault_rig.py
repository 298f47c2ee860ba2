"""A rig for recovery fault tests (and bench/recovery_faults.py): a service only its restart repairs.

- :class:`RepairableServer` answers 500 until its flag file exists, then 200. Only the restart stub
  creates the flag, so a resolved ``auto`` incident means a real action had a real effect, and the
  test "breaks" the service by deleting the flag.
- :func:`write_stub` writes the restart command. Each run appends one JSON line to the action log
  (incident, attempt, pid, time, and whether the service was already healthy), then does what the
  behaviour file says (wait for a gate file, sleep), then repairs the service and exits 0.
- :func:`problems` reads the action log and the database and lists every broken promise: a
  duplicated attempt, an action on a healthy service, an action the journal does not know (or a
  journal action the log does not), a row left ``running``, an incident not settled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from orchestrator.db.engine import Database
from orchestrator.db.models import Component, Incident, JournalEntry
from tests.servers import LoopbackHTTPServer

#: Incident statuses a fault test may end in: done, or waiting for a human.
SETTLED = {"resolved", "escalated"}
#: When the daemon is killed, round after round (with how long the restart command still runs).
KILL_MOMENTS = (("command running", 1.0), ("service repaired", 0.0), ("incident opened", 0.3))


class RepairableServer(LoopbackHTTPServer):
    """200 while ``flag`` exists, 500 otherwise (decided per request)."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag
        super().__init__("ok" if flag.exists() else "500")

    def _respond(self, h) -> None:
        self.set_mode("ok" if self.flag.exists() else "500")
        super()._respond(h)

    def breaks(self) -> None:
        """The service fails from now on, until a restart repairs it."""
        self.flag.unlink(missing_ok=True)

    def healthy(self) -> bool:
        return self.flag.exists()


_STUB = '''#!{python} -S
import json, os, sys, time
flag, log, behaviour = {flag!r}, {log!r}, {behaviour!r}
healthy = os.path.exists(flag)
with open(log, "a") as out:
    out.write(json.dumps({{"incident": sys.argv[1], "attempt": sys.argv[2], "pid": os.getpid(),
                           "t": time.time(), "healthy_before": healthy}}) + "\\n")
todo = json.load(open(behaviour)) if os.path.exists(behaviour) else {{}}
if todo.get("gate"):
    while not os.path.exists(todo["gate"]):
        time.sleep(0.02)
time.sleep(todo.get("sleep_s", 0))
if todo.get("repair", True):
    open(flag, "a").close()
print("restarted" if todo.get("exit", 0) == 0 else "restart failed")
sys.exit(todo.get("exit", 0))
'''


class Stub:
    """The restart command and what it logged."""

    def __init__(self, folder: Path, flag: Path) -> None:
        self.path, self.log, self.behaviour = folder / "restart-stub", folder / "actions.jsonl", folder / "stub.json"
        self.path.write_text(_STUB.format(python=sys.executable, flag=str(flag), log=str(self.log),
                                          behaviour=str(self.behaviour)))
        self.path.chmod(0o755)

    def behave(self, gate: Path | None = None, sleep_s: float = 0.0, *, repair: bool = True, exit: int = 0) -> None:
        """What the next runs do: wait for ``gate`` to exist, sleep, repair the service (or not), exit."""
        self.behaviour.write_text(json.dumps({"gate": str(gate) if gate else None, "sleep_s": sleep_s,
                                              "repair": repair, "exit": exit}))

    def actions(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


def write_stub(folder: Path, flag: Path) -> Stub:
    return Stub(folder, flag)


#: No crash-loop backoff: rounds of faults seconds apart are not a crash-looping service here.
NO_CRASH_LOOP = {"crash_loop": {"base": "10ms", "cap": "10ms", "reset_after": "10ms"}}


def plan_file(folder: Path, stub: Stub, *, attempts: int = 3, timeout: str = "10s", backoff: str = "50ms",
              verify_deadline: str = "5s", limits: dict | None = None) -> Path:
    """One restart step running the stub; quick verification and no settle window."""
    path = folder / "plans.json"
    path.write_text(json.dumps({"version": 1, "limits": {"settle": "0s", **(NO_CRASH_LOOP if limits is None else limits)},
                                "plans": {"p": {
        "budget": {"max_actions": 100, "window": "1h"},
        "steps": [{"strategy": "restart", "attempts": attempts, "timeout": timeout,
                   "params": {"command": [str(stub.path), "{incident.id}", "{attempt}"]},
                   "backoff": {"base": backoff, "cap": backoff},
                   "verify": {"interval": "100ms", "successes": 1, "deadline": verify_deadline}}]}}}))
    return path


def start_daemon(db_url: str, plans: Path, folder: Path) -> subprocess.Popen:
    """``orchestrator run`` as a real process, its output appended to ``folder/daemon.log`` (a pipe
    nobody reads would block it)."""
    log = (folder / "daemon.log").open("a")
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "--db", db_url, "--plans", str(plans), "run"],
                            env={**os.environ, "ORCHESTRATOR_HOME": str(folder / "home")}, stdout=log,
                            stderr=subprocess.STDOUT)


def incidents(db: Database) -> list[Incident]:
    with db.read() as session:
        return list(session.scalars(select(Incident).where(Incident.component_id.is_not(None))
                                    .order_by(Incident.id)))


def settled(db: Database) -> bool:
    """Every component incident is resolved or escalated."""
    return all(i.status in SETTLED for i in incidents(db))


def problems(db: Database, stub: Stub) -> list[str]:
    """Every broken promise the action log and the database show together."""
    actions = stub.actions()
    ran = Counter((a["incident"], a["attempt"]) for a in actions)
    found = [f"attempt {k} ran {n} times" for k, n in ran.items() if n > 1]
    found += [f"acted on a healthy service: incident {a['incident']} attempt {a['attempt']}" for a in actions
              if a["healthy_before"]]
    with db.read() as session:
        rows = list(session.scalars(select(JournalEntry)))
    journaled = {(str(r.incident_id), str(r.attempt)) for r in rows if r.executed}
    succeeded = {(str(r.incident_id), str(r.attempt)) for r in rows if r.executed and r.status == "succeeded"}
    found += [f"action {k} is not in the journal" for k in ran if k not in journaled]
    # a claimed attempt whose owner died before its command started is journaled as interrupted
    found += [f"journal says {k} succeeded but it never ran" for k in succeeded if k not in ran]
    found += [f"journal row {r.incident_id}/{r.step_index}/{r.attempt} left running" for r in rows
              if r.status == "running"]
    found += [f"incident {i.id} is {i.status}" for i in incidents(db) if i.status not in SETTLED]
    return found


def _poll(predicate, timeout_s: float) -> object:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(0.05)
    return value


def history(db: Database, stub: Stub) -> str:
    """The incidents, the journal and the action log, for an assertion's message."""
    with db.read() as session:
        journal = [(r.incident_id, r.step_index, r.attempt, r.status, r.executed)
                   for r in session.scalars(select(JournalEntry).order_by(JournalEntry.id))]
    lines = [f"incident {i.id}: {i.status} {i.resolution} reopened {i.reopen_count}x; {i.status_reason!r}"
             for i in incidents(db)]
    return "\n".join([*lines, f"journal {journal}", f"actions {stub.actions()}"])


def openings(db: Database) -> int:
    """Incidents opened or reopened so far."""
    with db.read() as session:
        return session.scalar(select(func.count(Incident.id) + func.coalesce(func.sum(Incident.reopen_count), 0)))


def up(db: Database) -> bool:
    with db.read() as session:
        return session.scalar(select(Component.state).where(Component.name == "svc")) == "up"


def break_and_kill(db: Database, server: RepairableServer, stub: Stub, daemon: subprocess.Popen, moment: str,
                   sleep_s: float | None = None) -> None:
    """Break the service and SIGKILL the daemon at ``moment`` of its recovery: ``"command running"``
    (the restart started; with ``sleep_s`` it runs that much more, else as the stub was told),
    ``"service repaired"`` (verifying, or done), or ``"incident opened"``."""
    _poll(lambda: up(db), 60)
    done, opened = len(stub.actions()), openings(db)
    if sleep_s is not None:
        stub.behave(sleep_s=sleep_s)
    server.breaks()
    if moment == "command running":
        _poll(lambda: len(stub.actions()) > done, 60)
    elif moment == "service repaired":
        _poll(server.healthy, 60)
    else:
        _poll(lambda: openings(db) > opened, 60)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(10)


def break_during_outage(db: Database, server: RepairableServer, stub: Stub, gate: Path, cut, heal,
                        away_s: float = 0.0) -> None:
    """Break the service; once its restart runs, ``cut()`` the database, let the command end (it
    repairs the service; recording that fails), wait ``away_s``, then ``heal()``."""
    _poll(lambda: up(db), 60)
    stub.behave(gate=gate)
    done = len(stub.actions())
    server.breaks()
    _poll(lambda: len(stub.actions()) > done, 60)  # the attempt is claimed and its command runs
    cut()
    gate.touch()
    _poll(server.healthy, 10)
    time.sleep(away_s)
    heal()
