"""Recovery benchmark: N components, K broken at once (crash, 500, hang), restarted by the real plan.

    python bench/recovery.py                       # N=200, K=20, max_concurrent_recoveries 4, 20, default
    python bench/recovery.py --count 20 --broken 3 --max-concurrent 4 --timeout 40   # smoke size
    python bench/recovery.py --mass-outage --max-concurrent 4 --settle 0s --timeout 15  # 60 % broken

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
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _services import (  # noqa: E402 - bench scripts run as files
    FAULTS,
    Daemon,
    Episode,
    Fleet,
    components_file,
    median,
    percentile,
    plan_file,
    read_actions,
    write_restart_script,
)

#: Seconds the idle daemon's CPU is sampled before the faults.
IDLE_SAMPLE_S = 5.0
POLL_S = 0.1


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

            step = count // broken
            chosen = [list(names.items())[i * step] for i in range(broken)]
            by_fault = {f: [(n, p) for j, (n, p) in enumerate(chosen) if FAULTS[j % 3] == f] for f in FAULTS}
            cpu_start, mono_start = daemon.cpu_s(), time.monotonic()
            episodes: list[Episode] = []
            for fault, group in by_fault.items():
                if group:
                    at = fleet.set_mode([p for _, p in group], fault)
                    episodes.extend(Episode(n, p, fault, at) for n, p in group)
            say(f"  broke {broken} of {count}: " + ", ".join(f"{len(g)} {f}" for f, g in by_fault.items()))
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


def _collect(db_path: Path, action_log: Path, episodes: list[Episode], max_concurrent: int | None,
             settle: str | None) -> PassResult:
    result = PassResult(max_concurrent, settle, episodes)
    actions = read_actions(action_log)
    first: dict[str, float] = {}
    for action in actions:
        first.setdefault(action["name"], action["t"])
    broken = {e.name for e in episodes}
    result.actions = len(actions)
    result.unexpected = sum(1 for a in actions if a["name"] not in broken)
    result.duplicates = len(actions) - len(first)
    resolved_at = dict(_query(db_path, "SELECT component_name, resolved_at FROM incidents "
                                       "WHERE status = 'resolved' AND kind = 'component'"))
    for e in episodes:
        if e.name in first:
            result.fault_to_action_s[e.name] = first[e.name] - e.broken_at
            if (done := _ts(resolved_at.get(e.name))) is not None:
                result.action_to_verified_s[e.name] = done - first[e.name]
    result.resolved = sum(1 for e in episodes if e.name in resolved_at)
    runs = _query(db_path, "SELECT claimed_at, finished_at FROM recovery_journal WHERE executed")
    result.max_running = _max_running([(_ts(s), _ts(f)) for s, f in runs if f is not None])
    result.mass_outage = bool(_query(db_path, "SELECT count(*) FROM incidents WHERE kind = 'mass_outage'")[0][0])
    return result


def report(r: PassResult, count: int, say=print) -> None:
    f2a = list(r.fault_to_action_s.values())
    a2v = list(r.action_to_verified_s.values())
    settle = r.settle or "default (2s)"
    say(f"max_concurrent_recoveries={r.max_concurrent or 'default (10 % of N, at least 4)'} settle={settle}: "
        f"{len(r.episodes)} of {count} broken, {r.resolved} resolved and verified")
    say(f"  fault→first action   median {median(f2a):6.2f} s   p95 {percentile(f2a, .95):6.2f} s   "
        f"max {max(f2a, default=float('nan')):6.2f} s")
    kinds = "   ".join(
        f"{k} {median([r.fault_to_action_s[e.name] for e in r.episodes if e.fault == k and e.name in r.fault_to_action_s]):.2f} s"
        for k in FAULTS)
    say(f"    by fault (median)  {kinds}")
    say(f"  action→verified      median {median(a2v):6.2f} s   p95 {percentile(a2v, .95):6.2f} s")
    say(f"  actions executed {r.actions} / expected {len(r.episodes)}   duplicates {r.duplicates}   "
        f"on healthy components {r.unexpected}")
    say(f"  recoveries running at once: max {r.max_running}   blast-radius guard tripped: "
        f"{'yes' if r.mass_outage else 'no'}")
    say(f"  daemon CPU: idle {r.idle_cpu_pct:.1f} % of one core, during recovery {r.recovery_cpu_pct:.1f} % "
        f"(over {r.recovery_window_s:.1f} s)   exit status {r.exit_status}")


def ok(r: PassResult) -> bool:
    """The pass's hard requirements: every fault repaired once, no duplicates, the guard quiet."""
    return (r.resolved == len(r.episodes) and r.actions == len(r.episodes) and r.duplicates == 0
            and r.unexpected == 0 and not r.mass_outage and r.exit_status == 0)


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
    args = parser.parse_args(argv)
    if args.mass_outage:
        args.broken = int(args.count * 0.6)
    elif not 0 < args.broken <= args.count // 2:
        parser.error("--broken must be between 1 and half of --count (the blast-radius guard would trip)")
    good = True
    for limit in (None if v == "default" else int(v) for v in args.max_concurrent.split(",")):
        print(f"pass: N={args.count} K={args.broken} max_concurrent_recoveries={limit or 'default'}", flush=True)
        result = run_pass(args.count, args.broken, limit, args.settle, args.timeout)
        report(result, args.count)
        if args.mass_outage:
            print(f"  mass outage: guard tripped {'yes' if result.mass_outage else 'NO'}, "
                  f"{result.actions} restarts ran anyway", flush=True)
            good &= result.mass_outage
            continue
        print(f"  load average after the pass: {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
              f"({os.cpu_count()} CPUs)", flush=True)
        good &= ok(result)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
