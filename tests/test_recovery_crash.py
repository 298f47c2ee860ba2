"""Crash safety and real restarts: SIGKILL mid-step (20 times), reconciliation, a real service restart.

The kill loop uses a fork server: one helper process imports everything once and forks a fresh
"daemon" per round, so twenty rounds take seconds, not the twenty interpreter start-ups they would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from orchestrator.db.models import Incident, JournalEntry
from orchestrator.plans import load_plans
from orchestrator.recovery.coordinator import RecoveryCoordinator
from orchestrator.recovery.health_view import DbHealthView
from tests.servers import LoopbackHTTPServer, wait_for
from tests.test_recovery_support import add_component, journal_rows, plan_set

ROOT = Path(__file__).resolve().parents[1]
#: kill rounds here; bench/recovery_faults.py runs the long version
ROUNDS = 5

FORK_SERVER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, sys.argv[3])
    from orchestrator.db.engine import Database
    from orchestrator.plans import load_plans
    from orchestrator.recovery.coordinator import RecoveryCoordinator
    from orchestrator.recovery.health_view import DbHealthView
    for _line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            try:
                db = Database(sys.argv[1])
                coordinator = RecoveryCoordinator(db, load_plans(sys.argv[2]), health=DbHealthView(db), settle_s=0,
                                                  tick_s=0.05, lease_s=0.5)
                coordinator.start()  # takes over what the killed one left: kills its command, settles its row
                coordinator.wait_idle(30)
                coordinator.recover("web", wait=True)
                coordinator.shutdown(5)
            finally:
                os._exit(0)
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)
""")


def _write_plans(path: Path, command: list[str], verify: dict, timeout: str = "60s") -> None:
    path.write_text(json.dumps({"version": 1, "plans": {"p": {"steps": [
        {"strategy": "restart", "params": {"command": command}, "attempts": 1, "verify": verify,
         "timeout": timeout}]}}}))


def test_sigkill_mid_step_twenty_times_never_repeats_an_attempt_and_loses_no_incident(db, db_url, tmp_path) -> None:
    """Each round a fresh process takes the incident over (giving the command the dead one left
    running the rest of its 1 s deadline, then killing it by pid and start time), then starts the
    next attempt, and is killed in its turn."""
    markers = tmp_path / "markers.log"
    slow = tmp_path / "slow-restart"
    # The step's command: note who ran (incident, attempt, pid), then take far longer than the test waits.
    slow.write_text(f"#!{sys.executable} -S\nimport json, os, sys, time\n"
                    f"open({str(markers)!r}, 'a').write(json.dumps([*sys.argv[1:], os.getpid()]) + '\\n')\n"
                    "time.sleep(60)\n")
    slow.chmod(0o755)
    plans_path = tmp_path / "plans.json"
    _write_plans(plans_path, [str(slow), "{incident.id}", "{attempt}"],
                 {"interval": "20ms", "successes": 1, "deadline": "100ms"}, timeout="1s")
    with LoopbackHTTPServer("500") as server:
        add_component(db, "web", server.url, plan="p")
        helper = subprocess.Popen([sys.executable, "-c", FORK_SERVER, db_url, str(plans_path), str(ROOT)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        stray: list[int] = []
        try:
            for done in range(ROUNDS):
                helper.stdin.write("go\n")
                helper.stdin.flush()
                child = int(helper.stdout.readline())
                assert wait_for(lambda n=done + 1: markers.exists() and len(markers.read_text().splitlines()) >= n,
                                30), f"round {done}: the step never started"
                os.kill(child, signal.SIGKILL)  # the "daemon" dies in the middle of the step
                assert helper.stdout.readline().strip() == "reaped"
                stray.append(json.loads(markers.read_text().splitlines()[-1])[-1])
                if done:  # the previous round's command was killed by this round's process
                    assert not _alive(stray[-2]), f"round {done}: the orphaned command still runs"
            helper.stdin.close()
            helper.wait(10)
            restarted = RecoveryCoordinator(db, load_plans(plans_path), health=DbHealthView(db), settle_s=0,
                                            tick_s=0.05, lease_s=0.5)
            restarted.start()
            assert wait_for(lambda: not _alive(stray[-1]), 15), "the last orphaned command was never killed"
            assert restarted.wait_idle(30)
            restarted.shutdown(5)
        finally:
            helper.kill()
            for pid in stray:  # only if the test failed: the orphaned step commands, in their own sessions
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    runs = [tuple(json.loads(line)[:2]) for line in markers.read_text().splitlines()]
    assert len(runs) == ROUNDS and max(Counter(runs).values()) == 1, "a step attempt ran twice"
    rows = journal_rows(db)
    executed = [(str(r.incident_id), str(r.attempt)) for r in rows if r.executed]
    assert sorted(executed) == sorted(runs)  # every action is journaled, under the attempt it ran as
    assert {r.status for r in rows} == {"timed_out"}  # none left running
    assert all(r.detail.startswith("timed out: its owner died and its command was still running") for r in rows)
    with db.read() as session:
        incidents = session.scalars(select(Incident)).all()
        assert session.scalar(select(JournalEntry).where(JournalEntry.status == "running")) is None
    assert {str(i.id) for i in incidents} == {i for i, _ in runs}
    assert all(i.status == "escalated" for i in incidents)  # still there, waiting for a human


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, killed but not yet reaped by init, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


SERVICE = textwrap.dedent("""
    import os, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    port, pidfile, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if mode == "ok" else 500)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        def log_message(self, *a):
            pass
    server = HTTPServer(("127.0.0.1", port), Handler)
    open(pidfile + ".tmp", "w").write(str(os.getpid()))
    os.replace(pidfile + ".tmp", pidfile)
    server.serve_forever()
""")

RESTART = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    service, port, pidfile = sys.argv[1:4]
    old = int(open(pidfile).read())
    os.kill(old, signal.SIGTERM)
    for _ in range(200):
        try:
            os.kill(old, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    subprocess.Popen([sys.executable, service, port, pidfile, "ok"], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print("restarted", old)
""")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_real_service_restart_kills_and_restarts_the_process_and_verification_passes(db, tmp_path) -> None:
    service, restart, pidfile = tmp_path / "service.py", tmp_path / "svc-restart", tmp_path / "service.pid"
    service.write_text(SERVICE)
    restart.write_text(f"#!{sys.executable}\n{RESTART}")
    restart.chmod(0o755)
    port = _free_port()
    first = subprocess.Popen([sys.executable, str(service), str(port), str(pidfile), "broken"])
    try:
        assert wait_for(pidfile.exists, 10)
        plans = plan_set({"p": {"steps": [{"strategy": "restart", "attempts": 1, "verify": {"deadline": "10s"},
                                           "params": {"command": [str(restart), str(service), str(port),
                                                                  str(pidfile)]}}]}})
        add_component(db, "svc", f"http://127.0.0.1:{port}/health", plans=plans)
        coordinator = RecoveryCoordinator(db, plans, health=DbHealthView(db), settle_s=0, tick_s=0.05)
        iid = coordinator.recover("svc", wait=True)
        coordinator.shutdown(5)
        [row] = journal_rows(db, iid)
        assert (row.status, row.verification["passed"]) == ("succeeded", True)
        assert f"restarted {first.pid}" in row.output
        assert first.wait(5) is not None  # the old process is really gone
        assert int(pidfile.read_text()) != first.pid
        with db.read() as session:
            assert (session.get(Incident, iid).resolution, session.get(Incident, iid).resolved_by_step) == ("auto", 0)
    finally:
        first.kill()
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
