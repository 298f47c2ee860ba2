"""A randomized soak: a real daemon over a loopback fleet, a seeded walk of faults and operations, and
the invariants of docs/guarantees.md (tests/invariants.py) checked every second.

    result = Soak(seed=7, folder=tmp, db_url=url, duration_s=60).run()
    assert not result.violations, result.report()

1. A fleet of loopback HTTP services (tests/servers.py), registered with ``orchestrator apply``; a plan
   file made from the shipped recovery_strategies.json whose ``process`` restart runs a stub. The stub
   logs its argv and whether the service was answering (its own log), asks this process to bring the
   service back (listen again, answer 200: what a real restart does), logs how it ended.
2. ``orchestrator run --http`` as a real process in its own process group, the database reached
   through a TCP proxy on PostgreSQL (so it can be cut) and directly on SQLite (cut by holding its
   write lock).
3. Every 0.2-1.5 s one operation drawn from the seed: break a service (crash, 500, hang, slow, flap,
   crash loop) or fix it by hand; add, update, remove, pause, resume, maintain a component, also while
   its restart runs; force a degradation level (EMERGENCY too) or clear it; reload the plans (valid or not) with SIGHUP;
   SIGKILL the daemon with or without its children; SIGSTOP/SIGCONT; SIGTERM and start again; cut the
   database; start a second daemon on the same database.
4. Every second (and for JUDGE_S after the walk) the checker reads the database, the API and /metrics (``status --json`` every tenth
   time) and the stub's log, and evaluates I1-I7 against what the walk did. A violation is printed with
   the seed and the operation log, so the same walk can be run again (``bench/soak.py --seed``).

Wall-clock jumps are not in the walk: libfaketime 0.9.10 makes Python's ``time.sleep`` fail with EINVAL
once its offset changes while the monotonic clock is left real, so a jumped daemon would die of the
tool, not of the jump. The monotonic-timer tests cover that defect with an injected clock.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from tests import invariants as inv
from tests.servers import LoopbackHTTPServer
from tests.soak_rig import STEP_TIMEOUT, RestartControl, descendants, free_port, soak_plans
from tests.tcp_proxy import TcpProxy

FAULTS = ("crash", "500", "hang", "slow", "flap", "crash_loop")
#: Relative weights of the operations the walk draws.
WEIGHTS = {
    "break": 26, "fix": 6, "add": 4, "update": 4, "remove": 4, "pause": 3, "resume": 4, "maintenance": 3,
    "mid_step": 8, "degradation": 4, "reload": 4, "kill9": 3, "kill9_alone": 2, "stop_cont": 3,
    "term_restart": 3, "db_cut": 4, "second_daemon": 4,
}
#: Operations that stop the daemon or its database for a while (the bounds restart after them).
DISTURBING = frozenset({"kill9", "kill9_alone", "stop_cont", "term_restart", "db_cut", "second_daemon"})
DISTURBING_MID = frozenset({"kill9", "kill9_alone", "stop_cont"})
#: How long a planned mid-step operation waits for the restart to start, and how long that restart takes.
MID_STEP_WAIT_S = 20.0
MID_STEP_STUB_S = 3.0
#: Calm seconds (daemon running, database reachable) before the next disturbing operation.
CALM_BETWEEN_S = 20.0
#: A crash-looping service dies this long after each restart (the issue's example: 3 s).
CRASH_LOOP_UP_S = 3.0
#: A flapping service switches between 200 and 500 this often.
FLAP_PERIOD_S = 2.5
#: Seconds between the checker's observations; ``status --json`` runs every STATUS_EVERY-th one.
OBSERVE_EVERY_S = 1.0
STATUS_EVERY = 10
#: Seconds between two operations (drawn uniformly).
OP_GAP_S = (0.2, 1.5)
#: After the walk, seconds of observation without operations: the last operations' bounds run out.
JUDGE_S = 12.0
#: A started daemon must answer /healthz within this long.
START_TIMEOUT_S = 60.0
#: SIGTERM → exit.
STOP_TIMEOUT_S = 45.0
#: Fewest components kept registered (the blast-radius guard needs 4).
MIN_REGISTERED = 4


@dataclass
class Result:
    seed: int
    db: str
    operations: int
    oplog: list[str]
    violations: list[inv.Violation]
    written: int  # by the stop lines of the daemons stopped with SIGTERM
    rows: int  # check results in the database at the end (removed components' are deleted with them)
    dropped: int
    longest_stall_s: float
    misses: int
    actions: int
    runs: int
    walk: str = ""  # the options that repeat this walk

    def walk_command(self) -> str:
        """The command that repeats this walk (the random seed of tests/test_soak.py included)."""
        return f"python bench/soak.py --seed {self.seed} --db {self.db} {self.walk}"

    def report(self) -> str:
        lines = [f"soak seed={self.seed} db={self.db}: {self.operations} operations, {self.actions} restart actions, "
                 f"{self.runs} daemon runs; results in the database {self.rows}, written={self.written} dropped="
                 f"{self.dropped} by the stop lines; longest write "
                 f"stall {self.longest_stall_s:.1f}s; detection-bound misses {self.misses}; "
                 f"violations {len(self.violations)}"]
        if self.violations:
            lines += ["violations:", *(f"  {v}" for v in self.violations),
                      f"reproduce: {self.walk_command()}", "operations:",
                      *(f"  {o}" for o in self.oplog)]
        return "\n".join(lines)


@dataclass
class Daemon:
    proc: subprocess.Popen
    port: int
    log: Path
    started: float
    stopped: bool = False


@dataclass
class _Ran:
    returncode: int
    output: str


@dataclass
class _Svc:
    server: LoopbackHTTPServer
    flap_at: float = 0.0
    rebreak_at: float | None = None


class Soak:
    """One seeded walk; :meth:`run` returns its :class:`Result`."""

    def __init__(self, *, seed: int, folder: Path, db_url: str, duration_s: float, services: int = 6,
                 calm_between_s: float = CALM_BETWEEN_S, log=print) -> None:
        self.seed, self.folder, self.db_url, self.duration_s = seed, folder, db_url, duration_s
        self.calm_between_s = calm_between_s
        self.rng = random.Random(seed)
        self.stub_rng = random.Random(seed + 1)
        self.log = log
        self.is_pg = db_url.startswith("postgresql")
        self.world = inv.World()
        self.checker = inv.Checker(self.world)
        self.lock = threading.RLock()
        self.svcs: dict[str, _Svc] = {}
        self.oplog: list[str] = []
        self.daemons: list[Daemon] = []
        self.daemon: Daemon | None = None
        self.runs = 0
        self.written = self.dropped = 0
        self.pending: list[tuple[float, str, object]] = []  # (due monotonic, what, arg)
        self.mid_targets: dict[str, tuple[str, float]] = {}  # name → (what, until when to wait)
        self.next_name = services + 1
        self.initial = services
        self.home = folder / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.actions_log = folder / "actions.jsonl"
        self.proxy: TcpProxy | None = None
        self.sqlite_block = threading.Event()
        self.engine = sa.create_engine(db_url, pool_pre_ping=True)
        self.daemon_url = db_url
        if self.is_pg:
            url = sa.engine.make_url(db_url)
            self.proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
            self.daemon_url = url.set(host="127.0.0.1", port=self.proxy.port).render_as_string(hide_password=False)
        self.env = {**os.environ, "ORCHESTRATOR_HOME": str(self.home)}
        for name in ("ORCHESTRATOR_DB_URL", "ORCHESTRATOR_PLANS", "ERROR_HANDLING_ENABLED", "RETRY_MAX_ATTEMPTS",
                     "CIRCUIT_BREAKER_THRESHOLD", "RECOVERY_TIMEOUT", "ORCHESTRATOR_HTTP"):
            self.env.pop(name, None)

    # -- the walk -------------------------------------------------------------------------------------

    def run(self) -> Result:
        control = RestartControl(self._state, self._repair)
        hooks = LoopbackHTTPServer("ok", path="/hook")
        try:
            self._setup(control, hooks.port)
            self._start_daemon()
            end = time.monotonic() + self.duration_s
            next_op = next_look = time.monotonic()
            looks = 0
            while time.monotonic() < end or self._judging(end):
                now = time.monotonic()
                self._due(now)
                if now >= next_op and now < end:
                    self._operation()
                    next_op = time.monotonic() + self.rng.uniform(*OP_GAP_S)
                elif now >= end and self.pending:
                    self._note("walk over: the last disturbances end now; judging what follows")
                    for _due, what, arg in sorted(self.pending, key=lambda p: p[0]):
                        self._do_pending(what, arg)  # SIGCONT, database back, a start, ...
                    self.pending.clear()
                if now >= next_look:
                    looks += 1
                    self._look(with_status=looks % STATUS_EVERY == 0)
                    next_look = time.monotonic() + OBSERVE_EVERY_S
                time.sleep(0.05)
            self._look(with_status=True)
            self._stop_daemon()
            with self.engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT count(*) FROM check_results")).scalar()
        finally:
            self._cleanup(control, hooks)
        return Result(self.seed, "postgresql" if self.is_pg else "sqlite", len(self.oplog), self.oplog,
                      self.checker.violations, self.written, rows, self.dropped, self.checker.mem.longest_stall_s,
                      len(self.checker.mem.misses), sum(1 for a in inv.read_actions(self.actions_log)
                                                        if a.get("event") == "start"), self.runs,
                      f"--minutes {self.duration_s / 60:g} --calm-between {self.calm_between_s:g}")

    def _judging(self, end: float) -> bool:
        """After the walk: observe for JUDGE_S more (the last operations' bounds run out), and until a
        second daemon has exited or outlived its refusal bound."""
        now = time.monotonic()
        second = [d for d in self.daemons if d is not self.daemon and d.proc.poll() is None and not d.stopped
                  and now - d.started < inv.SECOND_DAEMON_REFUSAL_S + 2 * OBSERVE_EVERY_S]
        return now < end + JUDGE_S or bool(second)

    def _note(self, text: str) -> None:
        line = f"[{self.world.now_s():7.1f}s] {text}"
        self.oplog.append(line)
        self.log(line)

    def _operation(self) -> None:
        """One operation drawn from WEIGHTS; one that disturbs the daemon only after CALM_BETWEEN_S of
        calm (``calm_between_s``), so every bound gets the time to be tested between disturbances."""
        allowed = self.world.calm_for(time.monotonic()) >= self.calm_between_s
        table = {k: w for k, w in WEIGHTS.items() if allowed or k not in DISTURBING}
        kinds, weights = zip(*table.items(), strict=True)
        kind = self.rng.choices(kinds, weights)[0]
        getattr(self, f"_op_{kind}")()

    def _due(self, now: float) -> None:
        for item in [p for p in self.pending if p[0] <= now]:
            self.pending.remove(item)
            self._do_pending(item[1], item[2])
        self._mid_steps_due(now)
        with self.lock:
            for name, svc in self.svcs.items():
                s = self.world.services.get(name)
                if s is None:
                    continue
                if s.fault == "flap" and now >= svc.flap_at:
                    svc.flap_at = now + FLAP_PERIOD_S
                    answering = svc.server._mode == "500"
                    svc.server.set_mode("ok" if answering else "500")
                if s.fault == "crash_loop" and svc.rebreak_at is not None and now >= svc.rebreak_at:
                    svc.rebreak_at = None
                    svc.server.crash()
                    self.world.broke(name, "crash_loop")

    def _look(self, with_status: bool) -> None:
        api = f"http://127.0.0.1:{self.daemon.port}" if self.daemon and not self.daemon.stopped else None
        try:
            obs = inv.observe(self.engine, api, self.actions_log,
                              status=(self.db_url, self.home) if with_status else None)
        except sa.exc.SQLAlchemyError as exc:
            self.log(f"observation failed: {exc.__class__.__name__}")
            return
        with self.lock:
            found = self.checker.evaluate(obs)
            alive = [(d.proc.pid, d.started) for d in self.daemons if d.proc.poll() is None and not d.stopped]
            found += self.checker.add(inv.check_i7(alive, self.world, self.checker.mem))
        for v in found:
            self._note(f"VIOLATION {v}")
        for d in self.daemons:
            if d is not self.daemon and d.proc.poll() is None and any(v.invariant == "I7" for v in found):
                self._kill_group(d)

    # -- operations -----------------------------------------------------------------------------------

    def _registered(self, pred=lambda s: True) -> list[str]:
        return sorted(n for n, s in self.world.services.items() if pred(s))

    def _op_break(self) -> None:
        names = self._registered(lambda s: s.fault is None)
        if not names or len(self._registered(lambda s: s.fault is not None)) >= 4:
            return self._op_fix()
        name, fault = self.rng.choice(names), self.rng.choice(FAULTS)
        self._break(name, fault)

    def _break(self, name: str, fault: str) -> None:
        with self.lock:
            svc = self.svcs[name]
            if fault in ("crash", "crash_loop"):
                svc.server.crash()
            elif fault in ("500", "hang"):
                svc.server.set_mode(fault)
            elif fault == "slow":
                svc.server.slow_delay_s = 0.15  # well inside the 500 ms timeout: degraded at worst, never down
                svc.server.set_mode("slow")
            elif fault == "flap":
                svc.server.set_mode("500")
                svc.flap_at = time.monotonic() + FLAP_PERIOD_S
            self.world.broke(name, fault)
        self._note(f"break {name} {fault}")

    def _op_fix(self) -> None:
        names = self._registered(lambda s: s.fault is not None)
        if names:
            name = self.rng.choice(names)
            self._note(f"fix {name} by hand")
            self._repair(name, by_hand=True)

    def _repair(self, name: str, *, by_hand: bool = False) -> bool:
        with self.lock:
            svc, s = self.svcs.get(name), self.world.services.get(name)
            if svc is None:
                return False
            svc.server.restart()
            svc.server.set_mode("ok")
            if s is None:
                return True
            loop = s.fault == "crash_loop" and not by_hand
            self.world.answering(name, fixed_by_hand=by_hand, keep_fault=loop)
            svc.rebreak_at = time.monotonic() + CRASH_LOOP_UP_S if loop else None
            return True

    def _cli(self, *args: str) -> _Ran:
        """``orchestrator ARGS`` run in this process (the real CLI; a new interpreter per operation cost
        a second or two under load, a third of a short walk)."""
        from click.testing import CliRunner

        from orchestrator.cli import cli

        env = {"ORCHESTRATOR_HOME": str(self.home), "ORCHESTRATOR_DB_URL": None, "ORCHESTRATOR_PLANS": None}
        out = CliRunner().invoke(cli, ["--db", self.db_url, "--plans", str(self.plans), *args], env=env)
        return _Ran(out.exit_code, out.output)

    def _op_add(self) -> None:
        if len(self.world.services) >= self.initial + 3:
            return self._op_remove()
        name = f"s{self.next_name}"
        self.next_name += 1
        interval = self.rng.choice((1.0, 1.0, 2.0))
        server = LoopbackHTTPServer("ok")
        with self.lock:
            self.svcs[name] = _Svc(server)
        out = self._cli("component", "add", name, "--url", server.url, "--interval", f"{interval:g}s",
                        "--timeout", "500ms", "--failure-threshold", "2", "--plan", "process",
                        "--var", f"restart_script={self.stub}")
        with self.lock:
            now = time.monotonic()
            self.world.services[name] = inv.Service(name, interval_s=interval, changed_at=now, answering_since=now)
        self._note(f"add {name} every {interval:g}s (exit {out.returncode})")

    def _op_update(self) -> None:
        names = self._registered()
        name = self.rng.choice(names)
        interval = self.rng.choice((1.0, 2.0))
        out = self._cli("component", "update", name, "--interval", f"{interval:g}s")
        with self.lock:
            if out.returncode == 0 and name in self.world.services:
                s = self.world.services[name]
                s.interval_s, s.changed_at = interval, time.monotonic()
        self._note(f"update {name} interval {interval:g}s (exit {out.returncode})")

    def _op_remove(self, name: str | None = None) -> None:
        names = self._registered()
        if name is None:
            if len(names) <= MIN_REGISTERED:
                return self._op_add()
            name = self.rng.choice(names)
        with self.lock:
            gone = self.world.services.pop(name, None)
            if gone is not None:
                self.world.removed[name] = gone
        out = self._cli("component", "remove", name)
        self._note(f"remove {name} ({self._fault_of(name)}; exit {out.returncode})")

    def _fault_of(self, name: str) -> str:
        svc = self.svcs.get(name)
        return "gone" if svc is None else svc.server._mode

    def _op_pause(self, name: str | None = None) -> None:
        self._hold(name, "pause", "--reason", "soak")

    def _op_maintenance(self, name: str | None = None) -> None:
        self._hold(name, "maintenance", "--for", "10m")

    def _hold(self, name: str | None, command: str, *options: str) -> None:
        """A person's hold on a component: ``pause`` or ``maintenance``."""
        name = name or self.rng.choice(self._registered())
        out = self._cli("component", command, name, *options)
        with self.lock:
            s = self.world.services.get(name)
            if out.returncode == 0 and s is not None:
                s.paused, s.maintenance = s.paused or command == "pause", s.maintenance or command == "maintenance"
        self._note(f"{command} {name} (exit {out.returncode})")

    def _op_resume(self) -> None:
        names = self._registered(lambda s: s.paused or s.maintenance)
        if not names:
            return self._op_pause()
        name = self.rng.choice(names)
        s = self.world.services[name]
        codes = []
        if s.maintenance:
            codes.append(self._cli("component", "maintenance", name, "--end").returncode)
        if s.paused:
            codes.append(self._cli("component", "resume", name).returncode)
        with self.lock:
            if not any(codes):
                s.paused = s.maintenance = False
                s.changed_at = time.monotonic()
        self._note(f"resume {name} (exit {codes})")

    def _running_actions(self) -> list[dict]:
        actions = inv.read_actions(self.actions_log)
        ended = {(a["incident"], a["attempt"]) for a in actions if a.get("event") == "end"}
        return [a for a in actions if a.get("event") == "start" and (a["incident"], a["attempt"]) not in ended
                and a["name"] in self.world.services]

    def _op_mid_step(self) -> None:
        """Something happens to a component while its restart command runs: at once if one runs now,
        else a healthy service is broken and the walk acts when its restart starts (its stub is told to
        take MID_STEP_STUB_S, so there is time)."""
        running = self._running_actions()
        if running:
            action = self.rng.choice(running)
            self._mid_step(action, self._mid_step_choice())
            return
        names = self._registered(lambda s: s.fault is None and not s.paused and not s.maintenance
                                 and s.name not in self.mid_targets)
        if names:
            name, what = self.rng.choice(names), self._mid_step_choice()
            self.mid_targets[name] = (what, time.monotonic() + MID_STEP_WAIT_S)
            self._note(f"mid-step planned: {what} {name} while its restart runs")
            self._break(name, self.rng.choice(("crash", "500")))

    def _mid_step_choice(self) -> str:
        choices = ("pause", "remove", "maintenance", "kill9", "kill9_alone", "stop_cont")
        return self.rng.choice(choices)

    def _mid_steps_due(self, now: float) -> None:
        if not self.mid_targets:
            return
        running = {a["name"]: a for a in self._running_actions()}
        for name, (what, deadline) in list(self.mid_targets.items()):
            if name in running:
                del self.mid_targets[name]
                self._mid_step(running[name], what)
            elif now > deadline or name not in self.world.services:
                del self.mid_targets[name]

    def _mid_step(self, action: dict, what: str) -> None:
        if what in DISTURBING_MID and self.world.calm_for(time.monotonic()) < self.calm_between_s:
            what = "pause"  # the daemon was disturbed a moment ago: let the bounds run first
        name = action["name"]
        self._note(f"mid-step of incident {action['incident']} attempt {action['attempt']} ({name}): {what}")
        if what == "remove" and len(self._registered()) > MIN_REGISTERED:
            self._op_remove(name)
        elif what in ("pause", "remove"):
            self._op_pause(name)
        elif what == "maintenance":
            self._op_maintenance(name)
        else:
            getattr(self, f"_op_{what}")()

    def _op_degradation(self) -> None:
        if self.world.degradation_forced:
            out = self._cli("degradation", "clear")
            self.world.force_degradation(None)
            self._note(f"degradation clear (exit {out.returncode})")
        else:
            # degraded and minimal must hold nothing back (I6); emergency is a person's freeze
            level = self.rng.choice(("degraded", "minimal", "emergency"))
            out = self._cli("degradation", "set", level, "--for", f"{inv.DEGRADATION_FOR_S:.0f}s", "--reason", "soak")
            self.world.force_degradation(level if out.returncode == 0 else None)
            self._note(f"degradation set {level} (exit {out.returncode})")

    def _op_reload(self) -> None:
        if not self._alive():
            return
        if self.rng.random() < 0.4:
            self.plans.write_text('{"version": 1, "plans": {"process": {"steps": [{"strategy": "nope"}]}}}')
            self.daemon.proc.send_signal(signal.SIGHUP)
            self._note("reload an invalid plan file (SIGHUP)")
            # restored to the last valid file written, not to what the file held now: two overlapping
            # reloads would otherwise leave the second's "original" (the invalid file) in place for good
            self.pending.append((time.monotonic() + 1.0, "restore_plans", None))
        else:
            attempts = self.rng.choice((2, 3))
            self._write_plans(attempts)
            self.daemon.proc.send_signal(signal.SIGHUP)
            self._note(f"reload plans, restart attempts {attempts} (SIGHUP)")

    def _alive(self) -> bool:
        return self.daemon is not None and not self.daemon.stopped and self.daemon.proc.poll() is None

    def _op_kill9(self) -> None:
        if self._alive():
            self._note("SIGKILL the daemon and its children")
            self._kill_group(self.daemon)
            self._down_then_start()

    def _op_kill9_alone(self) -> None:
        if self._alive():
            self._note("SIGKILL the daemon alone (its commands run on)")
            self.world.disturb("daemon down")
            self.world.killed_pids.add(self.daemon.proc.pid)
            self.daemon.proc.kill()
            self.daemon.proc.wait(10)
            self.daemon.stopped = True
            self._down_then_start()

    def _down_then_start(self) -> None:
        self.world.disturb("daemon down")
        self.pending.append((time.monotonic() + self.rng.uniform(0.5, 3.0), "start", None))

    def _op_stop_cont(self) -> None:
        if self._alive() and not any(p[1] == "cont" for p in self.pending):
            pause_s = self.rng.uniform(3.0, 10.0)
            self._note(f"SIGSTOP the daemon for {pause_s:.1f}s")
            self.world.disturb("stopped")
            self.daemon.proc.send_signal(signal.SIGSTOP)
            self.pending.append((time.monotonic() + pause_s, "cont", self.daemon))

    def _op_term_restart(self) -> None:
        if self._alive():
            self._note("SIGTERM the daemon, then start it again")
            self._stop_daemon()
            self._down_then_start()

    def _op_db_cut(self) -> None:
        if "db cut" in self.world.disturbances:
            return
        away_s = self.rng.uniform(3.0, 10.0)
        self.world.disturb("db cut")
        if self.proxy is not None:
            self.proxy.cut()
            self._note(f"cut the database connection for {away_s:.1f}s (TCP proxy)")
        else:
            self.sqlite_block.clear()
            threading.Thread(target=self._hold_sqlite_lock, args=(away_s,), daemon=True).start()
            self._note(f"hold the SQLite write lock for {away_s:.1f}s (writes fail: database is locked)")
            return  # the holding thread lets go by itself: a CLI call blocked meanwhile cannot stretch it
        self.pending.append((time.monotonic() + away_s, "db back", None))

    def _hold_sqlite_lock(self, away_s: float) -> None:
        path = sa.engine.make_url(self.db_url).database
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            self.sqlite_block.wait(away_s)
            conn.execute("ROLLBACK")
        finally:
            conn.close()
            with self.lock:
                self._note("SQLite write lock released")
                self.world.settle("db cut")

    def _op_second_daemon(self) -> None:
        if not self._alive() or len([d for d in self.daemons if d.proc.poll() is None]) > 1:
            return
        if self.proxy is not None and self.rng.random() < 0.7:
            # the lock session dies with the connection: the case of defect 7
            self.proxy.cut()
            self.world.disturb("db cut")
            self._note("cut the database connection for 2s, then start a second daemon")
            self.pending.append((time.monotonic() + 2.0, "db back", None))
            self.pending.append((time.monotonic() + 2.5, "second", None))
        else:
            self._note("start a second daemon on the same database")
            self._do_pending("second", None)

    def _do_pending(self, what: str, arg: object) -> None:
        if what == "start":
            self._start_daemon()
        elif what == "cont":
            daemon = arg
            if daemon.proc.poll() is None:
                daemon.proc.send_signal(signal.SIGCONT)
            self._note("SIGCONT the daemon")
            self.world.settle("stopped")
        elif what == "db back":
            if self.proxy is not None:
                self.proxy.restore()
            self.sqlite_block.set()
            self._note("database reachable again")
            self.world.settle("db cut")
        elif what == "restore_plans":
            self.plans.write_text(self._valid_plans)
            self._note("plan file valid again (not reloaded)")
        elif what == "second":
            d = self._spawn()
            self._note(f"second daemon pid {d.proc.pid} started")

    # -- the daemon -----------------------------------------------------------------------------------

    def _spawn(self) -> Daemon:
        port = free_port()
        self.runs += 1
        log = self.folder / f"daemon-{self.runs}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--db", self.daemon_url, "--plans",
                                     str(self.plans), "run", "--http", f"127.0.0.1:{port}", "--check-processes", "0",
                                     "--log-level", "info"], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=self.folder)
        daemon = Daemon(proc, port, log, time.monotonic())
        self.daemons.append(daemon)
        return daemon

    def _start_daemon(self) -> None:
        self.world.disturb("daemon down")
        heir = self._heir()
        if heir is not None:  # a second daemon waiting for the lock got it when the first died: it is the one
            self.daemon = heir
            self._note(f"second daemon pid {heir.proc.pid} took over (the first one's lock came free); serving on "
                       f"{heir.port}")
            self.world.settle("daemon down")
            return
        daemon = self._spawn()
        deadline = time.monotonic() + START_TIMEOUT_S
        while inv._get(f"http://127.0.0.1:{daemon.port}/healthz", 2.0) is None:
            if daemon.proc.poll() is not None or time.monotonic() > deadline:
                self._note(f"daemon did not start (exit {daemon.proc.poll()}): {daemon.log.read_text()[-500:]!r}")
                self.checker.add([inv.Violation("I6", "daemon", "did not start", self.world.now_s())])
                break
            time.sleep(0.1)
        self.daemon = daemon
        self._note(f"daemon pid {daemon.proc.pid} serving on {daemon.port}")
        self.world.settle("daemon down")

    def _heir(self) -> Daemon | None:
        """A daemon the test started beside the one it just killed, still running: it held off while the
        first one held the lock and takes over now that it died (one daemon acts, I7). Waited for until
        it serves (or exits): a third one started meanwhile would be refused, and the walk would go on
        watching a daemon that never ran."""
        for d in self.daemons:
            if d is self.daemon or d.stopped:
                continue
            deadline = time.monotonic() + START_TIMEOUT_S
            while d.proc.poll() is None and time.monotonic() < deadline:
                if inv._get(f"http://127.0.0.1:{d.port}/healthz", 2.0) is not None:
                    return d
                time.sleep(0.1)
        return None

    def _stop_daemon(self) -> None:
        daemon = self.daemon
        if daemon is None or daemon.stopped:
            return
        stall = self.checker.stall_now_s()
        self.world.disturb("daemon down")
        daemon.stopped = True
        if daemon.proc.poll() is None:
            daemon.proc.send_signal(signal.SIGCONT)
            daemon.proc.send_signal(signal.SIGTERM)
            try:
                daemon.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._note("daemon did not stop within 45s of SIGTERM")
                self._kill_group(daemon)
        text = daemon.log.read_text(errors="replace")
        m = re.search(r"stopped instance=.* written=(\d+) dropped=(\d+)", text)
        if m:
            self.written += int(m.group(1))
            self.dropped += int(m.group(2))
        for v in self.checker.add(inv.check_i4(text, stall, self.world, self.checker.mem)):
            self._note(f"VIOLATION {v}")

    def _kill_group(self, daemon: Daemon) -> None:
        """SIGKILL the daemon and every process it started, as a supervisor that kills the whole unit
        does (restart commands run in their own process groups, so the daemon's group is not enough)."""
        pids = [daemon.proc.pid, *descendants(daemon.proc.pid)]
        self.world.killed_pids.add(daemon.proc.pid)
        self.world.group_kills.append(time.time())
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        daemon.proc.wait(10)
        daemon.stopped = True

    # -- set-up and clean-up --------------------------------------------------------------------------

    def _setup(self, control: RestartControl, hook_port: int) -> None:
        self.stub = control.write_stub(self.folder / "restart-stub", self.actions_log)
        self.hook_url = f"http://127.0.0.1:{hook_port}/hook"
        self.plans = self.folder / "plans.json"
        self._write_plans(None)
        components = []
        for i in range(1, self.initial + 1):
            name = f"s{i}"
            server = LoopbackHTTPServer("ok")
            self.svcs[name] = _Svc(server)
            now = time.monotonic()
            self.world.services[name] = inv.Service(name, changed_at=now, answering_since=now)
            components.append({"name": name, "url": server.url, "interval": "1s", "timeout": "500ms",
                               "failure_threshold": 2, "plan": "process", "vars": {"restart_script": str(self.stub)}})
        path = self.folder / "components.json"
        path.write_text(json.dumps({"components": components}))
        out = self._cli("apply", "-f", str(path))
        if out.returncode != 0:
            raise RuntimeError(f"apply failed: {out.output}")

    def _write_plans(self, attempts: int | None) -> None:
        #: the last valid plan file, which an invalid reload is undone to
        self._valid_plans = json.dumps(soak_plans(self.stub, self.hook_url, attempts))
        self.plans.write_text(self._valid_plans)
        plans = json.loads(self.plans.read_text())["plans"]
        self.world.plan_attempts = {name: p["steps"][0].get("attempts", 3) for name, p in plans.items()}
        self.world.step_timeout_s = float(STEP_TIMEOUT.removesuffix("s"))

    def _state(self, name: str) -> dict:
        with self.lock:
            s = self.world.services.get(name)
            return {"healthy": bool(s and not s.dead and s.fault not in ("hang", "500")),
                    "fault": s.fault if s else None,
                    "race": bool(s and time.monotonic() - s.hand_fixed_at < inv.HAND_FIX_RACE_S),
                    "sleep_s": MID_STEP_STUB_S if name in self.mid_targets else round(self.stub_rng.uniform(0.2, 2.5), 2)}

    def _cleanup(self, control, hooks) -> None:
        for d in self.daemons:
            if d.proc.poll() is None:
                try:
                    os.killpg(d.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                self._kill_group(d)
        self.sqlite_block.set()
        if self.proxy is not None:
            self.proxy.cut()
        for svc in self.svcs.values():
            svc.server.stop()
        hooks.stop()
        control.stop()
        self.engine.dispose()
