"""Recovery benchmark: N components, K broken at once (crash, 500, hang), restarted by the real plan.

    python bench/recovery.py                       # N=200, K=20, max_concurrent_recoveries 4, 20, default
    python bench/recovery.py --count 20 --broken 3 --max-concurrent 4 --timeout 40   # smoke size
    python bench/recovery.py --mass-outage --max-concurrent 4 --settle 0s --timeout 15  # 60 % broken
    python bench/recovery.py --monit               # Monit first, then each pass with its ratio to Monit
    python bench/recovery.py --count 40 --broken 4 --max-concurrent default --monit --timeout 60

With ``--monit`` (Monit from Debian: ``apt-get update && apt-get install -y monit``) a Monit pass runs
first, on a fresh fleet of the same N services: ``monit -I`` with bench/vs_monit.py's control file
(``set daemon 1``; per service ``check host`` + ``if failed port P protocol http request "/health"
for 2 cycles then exec "RESTART NAME"``; Monit's default 5 s connection timeout unless
``--monit-timeout``). Once Monit has checked every service a few times (and acted on none), the same
K ports break at once with the same faults, and the pass waits (``--timeout``) until each broken
service's restart script ran and the service answers again. Monit checks one service after another,
so a hanging port holds its whole cycle for the connection timeout. Fault→first action comes from the
restart script's action log as for the orchestrator; after every orchestrator pass its median is
printed as a ratio to Monit's (target ≤ 0.7; per fault kind vs_monit's targets), for information: the
exit status counts the Monit pass only as far as Monit restarted each broken service exactly once.

For each value of ``--max-concurrent`` (a fresh fleet, database and daemon each time):

1. start bench/fleet.py (N loopback endpoints) and ``orchestrator run`` with N components
   (interval 1 s, timeout 500 ms, failure_threshold 2, plan ``process``: restart script, verify every
   500 ms until 2 passes);
2. wait until every component is UP, measure the idle daemon's CPU for a few seconds;
3. break K ports at once, cycling crash / 500 / hang;
4. wait until the K incidents are resolved (or the timeout), then read the restart script's action
   log and the database.

The restart script is the only thing that repairs a port, so a resolved incident means a real action
had a real effect. Printed per pass: fault→first action (median, p95, max, and median by fault kind),
action→verified, actions executed vs expected (duplicates must be 0), the largest number of
recoveries running at once, whether the blast-radius guard tripped, and the daemon's CPU.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_s  # noqa: E402
from _services import (  # noqa: E402 - bench scripts run as files
    FAULTS,
    Daemon,
    Episode,
    Fleet,
    components_file,
    http_get,
    median,
    percentile,
    plan_file,
    read_actions,
    write_restart_script,
)
from vs_monit import INSTALL_HINT, TARGETS, Monit, monit_control_file, monit_installed  # noqa: E402

#: Seconds the idle daemon's CPU is sampled before the faults.
IDLE_SAMPLE_S = 5.0
POLL_S = 0.1
#: Monit checks every service this many times (its cycles) before the faults.
MONIT_WARMUP_CYCLES = 3
#: Seconds Monit keeps watching after the last repair: a duplicate would show up here.
MONIT_TAIL_S = 3.0
#: Target for the orchestrator's median fault→action over Monit's (per fault kind: vs_monit.TARGETS).
RATIO_TARGET = 0.7


@dataclass
class PassResult:
    max_concurrent: int | None
    settle: str | None
    episodes: list[Episode]
    fault_to_action_s: dict[str, float] = field(default_factory=dict)  # name → seconds
    action_to_verified_s: dict[str, float] = field(default_factory=dict)
    actions: int = 0
    duplicates: int = 0
    unexpected: int = 0
    resolved: int = 0
    max_running: int = 0
    mass_outage: bool = False
    idle_cpu_pct: float = 0.0
    recovery_cpu_pct: float = 0.0
    recovery_window_s: float = 0.0
    exit_status: int | None = None


def _ts(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


def _query(db_path: Path, sql: str, *params: object) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(POLL_S)


def _max_running(intervals: list[tuple[float, float]]) -> int:
    """The largest number of [start, end) intervals open at one instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = best = 0
    for _, step in edges:
        running += step
        best = max(best, running)
    return best


def _break(fleet: Fleet, names: dict[str, int], broken: int, say) -> list[Episode]:
    """Break ``broken`` services spread evenly over the fleet at once, cycling crash / 500 / hang."""
    step = len(names) // broken
    chosen = [list(names.items())[i * step] for i in range(broken)]
    by_fault = {f: [(n, p) for j, (n, p) in enumerate(chosen) if FAULTS[j % 3] == f] for f in FAULTS}
    episodes: list[Episode] = []
    for fault, group in by_fault.items():
        if group:
            at = fleet.set_mode([p for _, p in group], fault)
            episodes.extend(Episode(n, p, fault, at) for n, p in group)
    say(f"  broke {broken} of {len(names)}: " + ", ".join(f"{len(g)} {f}" for f, g in by_fault.items()))
    return episodes


def run_pass(count: int, broken: int, max_concurrent: int | None, settle: str | None, timeout_s: float,
             idle_sample_s: float = IDLE_SAMPLE_S, tail_s: float = 1.0, say=print) -> PassResult:
    """One fleet, one daemon, one burst of K faults; everything started here is stopped here."""
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        folder = Path(tmp)
        fleet = Fleet(count)
        daemon = None
        try:
            names = {f"svc-{i:04d}": port for i, port in enumerate(fleet.ports)}
            script, action_log = write_restart_script(folder, fleet, names)
            plans = plan_file(folder, max_concurrent=max_concurrent, settle=settle)
            comps = components_file(folder, names, script)
            daemon = Daemon(folder, plans, comps, run_for_s=timeout_s + 120)
            db_path = folder / "orchestrator.sqlite"

            def all_up() -> bool:
                return _query(db_path, "SELECT count(*) FROM components WHERE state = 'up'")[0][0] == count

            _wait(all_up, 60, f"all {count} components UP")
            cpu0, t0 = daemon.cpu_s(), time.monotonic()
            time.sleep(idle_sample_s)
            idle_cpu_pct = 100 * (daemon.cpu_s() - cpu0) / (time.monotonic() - t0)

            cpu_start, mono_start = daemon.cpu_s(), time.monotonic()
            episodes = _break(fleet, names, broken, say)
            wanted = tuple(e.name for e in episodes)
            marks = ",".join("?" * len(wanted))

            def resolved() -> int:
                return _query(db_path, f"SELECT count(*) FROM incidents WHERE status = 'resolved' "
                                       f"AND component_name IN ({marks})", *wanted)[0][0]

            try:
                _wait(lambda: resolved() == len(wanted), timeout_s, f"{len(wanted)} resolved incidents")
            except RuntimeError as exc:
                say(f"  WARNING: {exc}")
            window_s = time.monotonic() - mono_start
            recovery_cpu_pct = 100 * (daemon.cpu_s() - cpu_start) / window_s
            time.sleep(tail_s)  # a duplicate would show up here
            result = _collect(db_path, action_log, episodes, max_concurrent, settle)
            result.idle_cpu_pct, result.recovery_cpu_pct, result.recovery_window_s = (
                idle_cpu_pct, recovery_cpu_pct, window_s)
        finally:
            exit_status = daemon.stop() if daemon is not None else None
            fleet.stop()
        result.exit_status = exit_status
        return result


def run_monit_pass(count: int, broken: int, timeout_s: float, monit_timeout_s: int | None = None,
                   idle_sample_s: float = IDLE_SAMPLE_S, tail_s: float = MONIT_TAIL_S, say=print) -> PassResult:
    """The same fleet and burst of K faults as :func:`run_pass`, watched by Monit instead of the daemon;
    ``resolved`` counts the broken services Monit had restarted and that answer again."""
    with tempfile.TemporaryDirectory(prefix="bench-recovery-monit-") as tmp:
        folder = Path(tmp)
        fleet = Fleet(count)
        monit = None
        try:
            names = {f"svc-{i:04d}": port for i, port in enumerate(fleet.ports)}
            script, action_log = write_restart_script(folder, fleet, names)
            monit = Monit(monit_control_file(folder, names, script, monit_timeout_s))
            pid = monit.proc.pid

            def hits() -> int:
                return json.loads(http_get(fleet.control_port, "/status")[1])["hits"]

            _wait(lambda: hits() >= MONIT_WARMUP_CYCLES * count, 60,
                  f"Monit to check all {count} services {MONIT_WARMUP_CYCLES} times")
            cpu0, t0 = cpu_s(pid), time.monotonic()
            time.sleep(idle_sample_s)
            idle_cpu_pct = 100 * (cpu_s(pid) - cpu0) / (time.monotonic() - t0)
            if read_actions(action_log):
                raise RuntimeError("Monit acted before any fault: the set-up is broken")

            cpu_start, mono_start = cpu_s(pid), time.monotonic()
            episodes = _break(fleet, names, broken, say)
            answering: set[str] = set()

            def repaired() -> bool:
                acted = {a["name"] for a in read_actions(action_log)}
                answering.update(e.name for e in episodes
                                 if e.name in acted and e.name not in answering and _answers(e.port))
                return len(answering) == len(episodes)

            try:
                _wait(repaired, timeout_s, f"{len(episodes)} services restarted by Monit and answering")
            except RuntimeError as exc:
                say(f"  WARNING: {exc}")
            window_s = time.monotonic() - mono_start
            recovery_cpu_pct = 100 * (cpu_s(pid) - cpu_start) / window_s
            time.sleep(tail_s)  # a duplicate would show up here
            result = PassResult(None, None, episodes, resolved=len(answering), idle_cpu_pct=idle_cpu_pct,
                                recovery_cpu_pct=recovery_cpu_pct, recovery_window_s=window_s)
            _count_actions(result, action_log)
        finally:
            if monit is not None:
                monit.stop()
            fleet.stop()
        return result


def _answers(port: int) -> bool:
    """True when the service on ``port`` answers its health check with 200."""
    try:
        return http_get(port, "/health", timeout_s=1.0)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


def _count_actions(result: PassResult, action_log: Path) -> dict[str, float]:
    """Fill in fault→first action, actions, duplicates and actions on healthy services from the log;
    the time of each service's first action."""
    actions = read_actions(action_log)
    first: dict[str, float] = {}
    for action in actions:
        first.setdefault(action["name"], action["t"])
    broken = {e.name for e in result.episodes}
    result.actions = len(actions)
    result.unexpected = sum(1 for a in actions if a["name"] not in broken)
    result.duplicates = len(actions) - len(first)
    for e in result.episodes:
        if e.name in first:
            result.fault_to_action_s[e.name] = first[e.name] - e.broken_at
    return first


def _collect(db_path: Path, action_log: Path, episodes: list[Episode], max_concurrent: int | None,
             settle: str | None) -> PassResult:
    result = PassResult(max_concurrent, settle, episodes)
    first = _count_actions(result, action_log)
    resolved_at = dict(_query(db_path, "SELECT component_name, resolved_at FROM incidents "
                                       "WHERE status = 'resolved' AND kind = 'component'"))
    for e in episodes:
        if e.name in first and (done := _ts(resolved_at.get(e.name))) is not None:
            result.action_to_verified_s[e.name] = done - first[e.name]
    result.resolved = sum(1 for e in episodes if e.name in resolved_at)
    runs = _query(db_path, "SELECT claimed_at, finished_at FROM recovery_journal WHERE executed")
    result.max_running = _max_running([(_ts(s), _ts(f)) for s, f in runs if f is not None])
    result.mass_outage = bool(_query(db_path, "SELECT count(*) FROM incidents WHERE kind = 'mass_outage'")[0][0])
    return result


def _by_fault(r: PassResult) -> dict[str, float]:
    """Median fault→first action per fault kind (NaN for a kind with no action)."""
    return {k: median([r.fault_to_action_s[e.name] for e in r.episodes
                       if e.fault == k and e.name in r.fault_to_action_s]) for k in FAULTS}


def _fault_to_action_lines(r: PassResult, say) -> None:
    f2a = list(r.fault_to_action_s.values())
    say(f"  fault→first action   median {median(f2a):6.2f} s   p95 {percentile(f2a, .95):6.2f} s   "
        f"max {max(f2a, default=float('nan')):6.2f} s")
    say("    by fault (median)  " + "   ".join(f"{k} {m:.2f} s" for k, m in _by_fault(r).items()))


def report(r: PassResult, count: int, say=print) -> None:
    a2v = list(r.action_to_verified_s.values())
    settle = r.settle or "default (2s)"
    say(f"max_concurrent_recoveries={r.max_concurrent or 'default (10 % of N, at least 4)'} settle={settle}: "
        f"{len(r.episodes)} of {count} broken, {r.resolved} resolved and verified")
    _fault_to_action_lines(r, say)
    say(f"  action→verified      median {median(a2v):6.2f} s   p95 {percentile(a2v, .95):6.2f} s")
    say(f"  actions executed {r.actions} / expected {len(r.episodes)}   duplicates {r.duplicates}   "
        f"on healthy components {r.unexpected}")
    say(f"  recoveries running at once: max {r.max_running}   blast-radius guard tripped: "
        f"{'yes' if r.mass_outage else 'no'}")
    say(f"  daemon CPU: idle {r.idle_cpu_pct:.1f} % of one core, during recovery {r.recovery_cpu_pct:.1f} % "
        f"(over {r.recovery_window_s:.1f} s)   exit status {r.exit_status}")


def report_monit(r: PassResult, count: int, monit_timeout_s: int | None, say=print) -> None:
    """The Monit pass's lines: those of :func:`report` that apply to Monit."""
    timeout = f"{monit_timeout_s} s" if monit_timeout_s else "5 s, Monit's default"
    say(f"monit (set daemon 1, for 2 cycles, connection timeout {timeout}): {len(r.episodes)} of {count} "
        f"broken, {r.resolved} restarted and answering again")
    _fault_to_action_lines(r, say)
    say(f"  actions executed {r.actions} / expected {len(r.episodes)}   duplicates {r.duplicates}   "
        f"on healthy components {r.unexpected}")
    say(f"  monit CPU: idle {r.idle_cpu_pct:.1f} % of one core, during recovery {r.recovery_cpu_pct:.1f} % "
        f"(over {r.recovery_window_s:.1f} s)")


def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs > 0 else float("nan")


def report_ratio(r: PassResult, monit: PassResult, say=print) -> None:
    """The orchestrator pass's median fault→action over Monit's, overall and per fault kind."""
    overall = _ratio(median(list(r.fault_to_action_s.values())), median(list(monit.fault_to_action_s.values())))
    say(f"  ratio to Monit (fault→action median): {overall:.2f} (target <= {RATIO_TARGET})")
    ours, theirs = _by_fault(r), _by_fault(monit)
    say("    by fault           " + "   ".join(
        f"{k} {_ratio(ours[k], theirs[k]):.2f} (target <= {TARGETS[k]})" for k in FAULTS))


def ok(r: PassResult) -> bool:
    """The pass's hard requirements: every fault repaired once, no duplicates, the guard quiet."""
    return (r.resolved == len(r.episodes) and r.actions == len(r.episodes) and r.duplicates == 0
            and r.unexpected == 0 and not r.mass_outage and r.exit_status == 0)


def monit_ok(r: PassResult) -> bool:
    """Monit restarted every broken service once, touched no healthy one, and each answers again."""
    return (r.resolved == len(r.episodes) == len(r.fault_to_action_s) and r.actions == len(r.episodes)
            and r.duplicates == 0 and r.unexpected == 0)


def _load_line() -> str:
    return f"  load average after the pass: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="components (N)")
    parser.add_argument("--broken", type=int, default=20, help="components broken at once (K)")
    parser.add_argument("--max-concurrent", default="4,20,default",
                        help="comma-separated limits.max_concurrent_recoveries values, one pass each "
                             "(default: leave it unset, so it scales with the fleet)")
    parser.add_argument("--settle", default=None, help="limits.settle for the plan file (default: not set)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the K recoveries")
    parser.add_argument("--mass-outage", action="store_true",
                        help="break 60%% of the fleet instead: the blast-radius guard must trip; counts the "
                             "actions that ran before it did (waits --timeout, then stops)")
    parser.add_argument("--monit", action="store_true",
                        help="run a Monit pass first (same N, K and faults), then print each orchestrator "
                             "pass's fault→action median as a ratio to Monit's")
    parser.add_argument("--monit-timeout", type=int, default=None,
                        help="Monit's connection timeout in seconds (default: Monit's own, 5 s)")
    args = parser.parse_args(argv)
    if args.mass_outage and args.monit:
        parser.error("--monit compares repairs; with --mass-outage the orchestrator's guard stops them")
    if args.mass_outage:
        args.broken = int(args.count * 0.6)
    elif not 0 < args.broken <= args.count // 2:
        parser.error("--broken must be between 1 and half of --count (the blast-radius guard would trip)")
    if args.monit and not monit_installed():
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    good = True
    monit = None
    if args.monit:
        timeout = f"{args.monit_timeout}s" if args.monit_timeout else "default"
        print(f"pass: N={args.count} K={args.broken} monit (connection timeout {timeout})", flush=True)
        monit = run_monit_pass(args.count, args.broken, args.timeout, args.monit_timeout)
        report_monit(monit, args.count, args.monit_timeout)
        print(_load_line(), flush=True)
        good &= monit_ok(monit)
    for limit in (None if v == "default" else int(v) for v in args.max_concurrent.split(",")):
        print(f"pass: N={args.count} K={args.broken} max_concurrent_recoveries={limit or 'default'}", flush=True)
        result = run_pass(args.count, args.broken, limit, args.settle, args.timeout)
        report(result, args.count)
        if args.mass_outage:
            print(f"  mass outage: guard tripped {'yes' if result.mass_outage else 'NO'}, "
                  f"{result.actions} restarts ran anyway", flush=True)
            good &= result.mass_outage
            continue
        if monit is not None:
            report_ratio(result, monit)
        print(_load_line(), flush=True)
        good &= ok(result)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
