"""Health-check throughput: the real daemon against a loopback fleet, and the bare client as baseline.

    python bench/checks.py --count 10000 --interval 10 --duration 60 [--hang-fraction 0.1]

1. Start the fleet (bench/fleet.py, one process per 5,000 endpoints); with --hang-fraction, every
   k-th endpoint hangs (reads requests, never answers), so its checks end at --timeout.
2. Baseline: one requests.Session whose pool holds every host GETs the healthy endpoints in a loop
   from this process; CPU per request is ``time.process_time()`` over a second, warm pass. The same
   for the lean client plain checks use (checkers/wire.py), alone.
3. Register the endpoints with ``orchestrator apply -f`` and run ``orchestrator run --for`` as a
   subprocess. After the warm-up (the first checks are spread over one interval; with hanging
   endpoints, two more so they are DOWN and their incidents handled), a window of --duration
   seconds is measured: the daemon's and the fleet's CPU from /proc/PID/stat, the whole machine's
   from /proc/stat, peak RSS (VmHWM).
4. After the daemon stops by itself, read check_results: checks started in the window, their
   lateness (healthy and hanging endpoints apart), and the database bytes per stored check.

Figures go to stdout as ``name: value`` lines (``--json`` for one JSON object); progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
import spy  # noqa: E402 - bench/spy.py, beside this file

from orchestrator.core.check_spec import MAX_BODY_BYTES  # noqa: E402
from orchestrator.db.engine import Database  # noqa: E402
from orchestrator.db.models import CheckResultRow, Component  # noqa: E402
from orchestrator.health.checkers.http import request_head  # noqa: E402
from orchestrator.health.checkers.tls import client_context  # noqa: E402
from orchestrator.health.checkers.wire import WireClient, parse_target  # noqa: E402

#: seconds the daemon runs past the window (plus one timeout), so checks started in it are finished
TAIL_S = 1.0
#: endpoints the bare client keeps connections to at most (one file each; this process's limit is
#: 20,000 here): beyond 10,000 components it measures over this many
BARE_MAX_HOSTS = 10_000
#: extra seconds the daemon runs when --churn: ``apply --prune`` of a large registry takes a while
CHURN_ALLOWANCE_S = 120.0
#: how long the churn waits for the daemon to see a change once ``apply`` has committed it
CHURN_WAIT_S = 30.0
#: how long the daemon may take to stop once its --for is over
SHUTDOWN_WAIT_S = 300.0


def bare_client(fleet: c.Fleet, ports: list[int], passes: int) -> dict[str, float]:
    """CPU µs per GET of one shared pooled Session over ``ports`` (a first pass warms every connection)."""
    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=len(ports), pool_maxsize=1, max_retries=0)
    session.mount("http://", adapter)
    urls = [fleet.url(p) for p in ports]
    try:
        for url in urls:
            session.get(url, timeout=5).content  # noqa: B018 - read the body, as a check does
        fleet_cpu0, wall0, cpu0 = fleet.cpu_s(), time.monotonic(), time.process_time()
        for _ in range(passes):
            for url in urls:
                resp = session.get(url, timeout=5)
                resp.content  # noqa: B018
                if resp.status_code != 200:
                    raise RuntimeError(f"baseline GET {url}: {resp.status_code}")
        cpu, wall, fleet_cpu = time.process_time() - cpu0, time.monotonic() - wall0, fleet.cpu_s() - fleet_cpu0
    finally:
        session.close()
    n = passes * len(urls)
    return {"requests": n, "cpu_us": cpu / n * 1e6, "per_s": n / wall, "fleet_cpu_us": fleet_cpu / n * 1e6}


def bare_lean(fleet: c.Fleet, ports: list[int], passes: int) -> dict[str, float]:
    """CPU µs per GET of the lean client the daemon's plain checks use (checkers/wire.py), alone: one
    kept-alive connection per endpoint, the request head built and the answer read as a check does."""
    client = WireClient(client_context, max_origins=len(ports) + 1, per_origin=1)
    targets = [parse_target(fleet.url(p)) for p in ports]
    try:
        def one_pass() -> None:
            for target in targets:
                resp = client.request("GET", target, request_head("GET", target, {}), True,
                                      time.monotonic() + 5, MAX_BODY_BYTES)
                if resp.status != 200:
                    raise RuntimeError(f"lean baseline GET {target.host_header}: {resp.status}")

        one_pass()
        cpu0 = time.process_time()
        for _ in range(passes):
            one_pass()
        cpu = time.process_time() - cpu0
    finally:
        client.close()
    return {"cpu_us": cpu / (passes * len(ports)) * 1e6}


def measure(args: argparse.Namespace) -> dict[str, object]:
    with c.workdir("bench-checks-", args.keep) as workdir:
        return _measure(args, workdir)


def _measure(args: argparse.Namespace, workdir: Path) -> dict[str, object]:
    db_url = args.db or f"sqlite:///{workdir / 'bench.db'}"
    warmup_s = args.warmup if args.warmup is not None else args.interval * (3 if args.hang_fraction else 1)
    out: dict[str, object] = {"machine": c.machine(), "count": args.count, "interval_s": args.interval,
                              "timeout_s": args.timeout, "hang_fraction": args.hang_fraction,
                              "window_s": args.duration, "warmup_s": warmup_s, "db": db_url.split(":")[0]}
    c.log(f"starting a fleet of {args.count} endpoints")
    with c.fleet(args.count + args.churn) as fleet:
        ports, churn_ports = fleet.ports[:args.count], fleet.ports[args.count:]
        step = round(1 / args.hang_fraction) if args.hang_fraction else 0
        hanging = {p for i, p in enumerate(ports) if step and i % step == 0}
        healthy = [p for p in ports if p not in hanging]
        base = healthy[:BARE_MAX_HOSTS]
        c.log(f"baseline: bare requests.Session over {len(base)} endpoints")
        bare = bare_client(fleet, base, args.bare_passes)
        lean = bare_lean(fleet, base, args.bare_passes)
        if hanging:
            fleet.set_mode(sorted(hanging), "hang")
        names = {f"c{i:05d}": p for i, p in enumerate(ports)}

        def entries(ports_by_name: dict[str, int]) -> list[dict]:
            return [{"name": name, "url": fleet.url(port), "interval": f"{args.interval:g}s",
                     "timeout": f"{args.timeout:g}s", "success_threshold": 1}
                    for name, port in ports_by_name.items()]

        c.apply_components(db_url, entries(names), workdir)
        added = {f"n{i:05d}": p for i, p in enumerate(churn_ports)}
        run_for = warmup_s + args.duration + args.timeout + TAIL_S + (CHURN_ALLOWANCE_S if args.churn else 0)
        extra = ["--workers", str(args.workers)] if args.workers else []
        if args.check_processes is not None:
            extra += ["--check-processes", str(args.check_processes)]
        c.log(f"daemon: run --for {run_for:g}s, warm-up {warmup_s:g}s, window {args.duration:g}s")
        spawned = time.monotonic()
        with c.daemon(db_url, workdir, run_for, *extra) as proc:
            started = time.monotonic()
            first_pass = _FirstPass(db_url, args.count)
            time.sleep(warmup_s)
            t0 = datetime.now(UTC)
            d0, f0, m0 = c.tree_cpu_s(proc.pid), fleet.cpu_s(), c.machine_busy()
            if args.profile:
                spy.record(proc.pid, args.duration, args.profile)
            elif args.churn:
                out.update(_churn(db_url, workdir, args, lambda: entries(names), lambda: entries(added)))
            time.sleep(max(0.0, args.duration - (datetime.now(UTC) - t0).total_seconds()))
            t1 = datetime.now(UTC)
            d1, f1, m1 = c.tree_cpu_s(proc.pid), fleet.cpu_s(), c.machine_busy()
            peak_kb = c.status_kb(proc.pid, "VmHWM")
            workers_kb = c.children_kb(proc.pid, "VmHWM")
            first_done = first_pass.stop()
            # An overloaded daemon runs its whole backlog of submitted checks before it exits.
            rc = c.wait_exit(proc, args.timeout + TAIL_S + SHUTDOWN_WAIT_S)
        if rc != 0:
            raise RuntimeError(f"daemon exited with {rc}; see {workdir / 'daemon.log'}")
    window = (t1 - t0).total_seconds()
    db = Database(db_url)
    try:
        with db.read() as session:
            ids = dict(session.execute(select(Component.name, Component.id)).all())
            hang_ids = {ids[n] for n, p in names.items() if p in hanging}
            rows = session.execute(select(CheckResultRow.component_id, CheckResultRow.lateness_ms,
                                          CheckResultRow.ok).where(
                CheckResultRow.checked_at >= t0, CheckResultRow.checked_at < t1)).all()
            warm = session.scalars(select(CheckResultRow.lateness_ms).where(
                CheckResultRow.checked_at < t0, CheckResultRow.component_id.not_in(hang_ids))).all()
            total_rows = session.scalar(select(func.count()).select_from(CheckResultRow))
            db_bytes = _db_bytes(db, session)
    finally:
        db.dispose()
    late_ok = [r.lateness_ms for r in rows if r.component_id not in hang_ids]
    late_hang = [r.lateness_ms for r in rows if r.component_id in hang_ids]
    checks = len(rows)
    daemon_log = (workdir / "daemon.log").read_text(errors="replace")
    out.update({
        "scheduled_per_s": args.count / args.interval,
        "achieved_per_s": checks / window,
        "healthy_scheduled_per_s": len(healthy) / args.interval,
        "healthy_achieved_per_s": len(late_ok) / window,
        "lateness_healthy_p50_ms": c.percentile(late_ok, 50), "lateness_healthy_p99_ms": c.percentile(late_ok, 99),
        "lateness_healthy_max_ms": c.percentile(late_ok, 100),
        "warmup_lateness_healthy_p99_ms": c.percentile(list(warm), 99),
        "warmup_lateness_healthy_max_ms": c.percentile(list(warm), 100),
        "lateness_hanging_p50_ms": c.percentile(late_hang, 50), "lateness_hanging_p99_ms": c.percentile(late_hang, 99),
        "daemon_cpu_us_per_check": (d1 - d0) / checks * 1e6 if checks else float("nan"),
        "bare_cpu_us_per_request": bare["cpu_us"],
        "bare_requests_per_s": bare["per_s"],
        "bare_lean_cpu_us_per_request": lean["cpu_us"],
        "fleet_cpu_us_per_bare_request": bare["fleet_cpu_us"],
        "daemon_cores": (d1 - d0) / window,
        "fleet_cores": (f1 - f0) / window,
        "machine_busy_cores": (m1[0] - m0[0]) / window,
        "machine_cores": os.cpu_count(),
        "daemon_peak_rss_mib": peak_kb / 1024,
        "workers_peak_rss_mib": workers_kb / 1024,
        "startup_all_checked_s": first_done - started if first_done else float("nan"),
        "startup_all_checked_from_spawn_s": first_done - spawned if first_done else float("nan"),
        "startup_in_intervals": (first_done - started) / args.interval if first_done else float("nan"),
        "db_bytes_per_check": db_bytes / total_rows if total_rows else float("nan"),
        "db_rows": total_rows,
        "healthy_failed_in_window": sum(1 for r in rows if r.component_id not in hang_ids and not r.ok),
        "runs_skipped_busy": daemon_log.count("maximum number of running instances reached"),
        "transitions_to_down": daemon_log.count("-> down "),
    })
    out["cpu_ratio_to_bare"] = out["daemon_cpu_us_per_check"] / bare["cpu_us"]
    out["cpu_ratio_to_bare_lean"] = out["daemon_cpu_us_per_check"] / lean["cpu_us"]
    out["fleet_cpu_us_per_check"] = (f1 - f0) / checks * 1e6 if checks else float("nan")
    return out


def _churn(db_url: str, workdir: Path, args: argparse.Namespace, before, extra) -> dict[str, float]:
    """A quarter into the window, register --churn more components (``apply`` of those alone); at half,
    remove them again (``apply --prune`` of the original set). Returns how long each took to take
    effect, from the start of ``apply``, and how long ``apply`` itself took."""
    time.sleep(args.duration / 4)
    began = time.monotonic()
    c.apply_components(db_url, extra(), workdir)
    applied = time.monotonic() - began
    db = Database(db_url)
    try:
        while True:
            with db.read() as session:
                n = session.scalar(select(func.count()).select_from(Component).where(
                    Component.name.like("n%"), Component.last_check_at.is_not(None)))
            if n >= args.churn or time.monotonic() - began - applied > CHURN_WAIT_S:
                break
            time.sleep(0.1)
    finally:
        db.dispose()
    out = {"churn_apply_add_s": applied, "churn_added_checked_s": time.monotonic() - began,
           "churn_added_after_apply_s": time.monotonic() - began - applied, "churn_added_checked": n}
    time.sleep(max(0.0, args.duration / 2 - (time.monotonic() - began)))
    began = time.monotonic()
    c.apply_components(db_url, before(), workdir, prune=True)
    out["churn_apply_remove_s"] = time.monotonic() - began
    log_path = workdir / "daemon.log"
    while (f"removed={args.churn} ".encode() not in log_path.read_bytes()
           and time.monotonic() - began - out["churn_apply_remove_s"] < CHURN_WAIT_S):
        time.sleep(0.1)
    out["churn_removed_s"] = time.monotonic() - began
    return out


class _FirstPass:
    """Polls the database (its own connection) until every component has a judged result."""

    def __init__(self, db_url: str, count: int) -> None:
        self.db_url, self.count = db_url, count
        self.done_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = Database(self.db_url)
        try:
            while not self._stop.wait(0.25):
                with db.read() as session:
                    n = session.scalar(select(func.count()).select_from(Component)
                                       .where(Component.last_check_at.is_not(None)))
                if n >= self.count:
                    self.done_at = time.monotonic()
                    return
        finally:
            db.dispose()

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join(10)
        return self.done_at


def _db_bytes(db: Database, session) -> int:
    """Bytes the database uses: the SQLite file and its WAL, or the PostgreSQL database size."""
    if db.is_sqlite:
        path = Path(db.engine.url.database)
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return int(session.scalar(select(func.pg_database_size(func.current_database()))))


def report(r: dict[str, object]) -> str:
    hang = r["hang_fraction"]
    lines = [
        f"machine: {r['machine']}",
        f"fleet: {r['count']} endpoints, interval {r['interval_s']:g}s, timeout {r['timeout_s']:g}s, "
        f"hanging {hang:.0%}; db {r['db']}; warm-up {r['warmup_s']:g}s, window {r['window_s']:g}s",
        f"checks/s: {r['achieved_per_s']:.0f} achieved / {r['scheduled_per_s']:.0f} scheduled",
        f"healthy checks/s: {r['healthy_achieved_per_s']:.0f} achieved / {r['healthy_scheduled_per_s']:.0f} "
        "scheduled",
        f"lateness healthy: p50 {r['lateness_healthy_p50_ms']:.1f} ms, p99 {r['lateness_healthy_p99_ms']:.1f} ms, "
        f"max {r['lateness_healthy_max_ms']:.1f} ms",
    ]
    lines.append(f"lateness healthy during the warm-up (state changes, incidents): "
                 f"p99 {r['warmup_lateness_healthy_p99_ms']:.1f} ms, max {r['warmup_lateness_healthy_max_ms']:.1f} ms")
    if hang:
        lines.append(f"lateness hanging: p50 {r['lateness_hanging_p50_ms']:.1f} ms, "
                     f"p99 {r['lateness_hanging_p99_ms']:.1f} ms")
    lines += [
        f"healthy endpoints' checks failed in the window: {r['healthy_failed_in_window']}; "
        f"runs skipped as still running (whole run): {r['runs_skipped_busy']}; "
        f"DOWN transitions (whole run): {r['transitions_to_down']}",
        f"daemon CPU per check: {r['daemon_cpu_us_per_check']:.0f} us",
        f"bare client CPU per request: {r['bare_cpu_us_per_request']:.0f} us "
        f"({r['bare_requests_per_s']:.0f} req/s on one thread)",
        f"ratio daemon/bare: {r['cpu_ratio_to_bare']:.2f}",
        f"bare lean client (checkers/wire.py) CPU per request: {r['bare_lean_cpu_us_per_request']:.0f} us; "
        f"ratio daemon/bare lean: {r['cpu_ratio_to_bare_lean']:.2f}",
        f"fleet CPU per check: {r['fleet_cpu_us_per_check']:.0f} us "
        f"(per bare request: {r['fleet_cpu_us_per_bare_request']:.0f} us)",
        f"cores busy: daemon {r['daemon_cores']:.2f}, fleet {r['fleet_cores']:.2f}, "
        f"whole machine {r['machine_busy_cores']:.2f} of {r['machine_cores']}",
        f"daemon peak RSS: {r['daemon_peak_rss_mib']:.0f} MiB (worker processes: "
        f"{r['workers_peak_rss_mib']:.0f} MiB together)",
        f"start-up: every component checked and judged once {r['startup_all_checked_s']:.1f} s after "
        f"'started' ({r['startup_in_intervals']:.2f} intervals; {r['startup_all_checked_from_spawn_s']:.1f} s "
        "from the process start)",
        f"db bytes per check: {r['db_bytes_per_check']:.0f} ({r['db_rows']} rows)",
    ]
    if "churn_added_checked_s" in r:
        lines.append(f"churn: {r['churn_added_checked']} added and checked {r['churn_added_after_apply_s']:.1f} s after "
                     f"apply committed (apply itself {r['churn_apply_add_s']:.1f} s); removed, the daemon dropped them "
                     f"{r['churn_removed_s'] - r['churn_apply_remove_s']:.1f} s after apply --prune committed (apply "
                     f"{r['churn_apply_remove_s']:.1f} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="endpoints (components)")
    parser.add_argument("--interval", type=float, default=10.0, help="check interval, seconds")
    parser.add_argument("--timeout", type=float, default=2.0, help="check timeout, seconds")
    parser.add_argument("--duration", type=float, default=30.0, help="measured window, seconds")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before the window (default: one interval; three with hanging endpoints, "
                             "so they are DOWN and their incidents handled)")
    parser.add_argument("--hang-fraction", type=float, default=0.0, help="share of endpoints that hang")
    parser.add_argument("--workers", type=int, default=None, help="daemon check threads (default: its own)")
    parser.add_argument("--churn", type=int, default=0,
                        help="add this many components a quarter into the window, remove them at half")
    parser.add_argument("--check-processes", type=int, default=None,
                        help="daemon check worker processes (default: its own choice)")
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in a temporary directory)")
    parser.add_argument("--bare-passes", type=int, default=1, help="measured baseline passes over the fleet")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (database, daemon log)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy the daemon during the window into this file; print its top frames")
    args = parser.parse_args(argv)
    c.exit_on_sigterm()
    if not 0 <= args.hang_fraction < 1:
        parser.error("--hang-fraction must be in [0, 1)")
    result = measure(args)
    print(json.dumps(result) if args.json else report(result), flush=True)
    if args.profile:
        print(spy.summarise(args.profile), flush=True)


if __name__ == "__main__":
    main()
