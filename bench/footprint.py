"""Steady-state cost beside Monit: CPU-seconds per minute and resident memory, same fleet, same cadence.

    python bench/footprint.py --count 200 --interval 1 --duration 60
    python bench/footprint.py --count 20 --interval 10 --duration 30       # idle RSS, small fleet
    python bench/footprint.py --count 10000 --interval 10 --duration 30    # idle RSS, large fleet

1. Start the loopback fleet (bench/fleet.py) of --count healthy endpoints.
2. Monit (Debian's ``monit``, foreground, own control file): ``set daemon INTERVAL`` and one
   ``check host`` with ``if failed port P protocol http request "/health"`` per endpoint. After
   --warmup seconds, its CPU (/proc/PID/stat) over --duration seconds and its RSS.
3. The orchestrator: the same endpoints registered with ``apply -f`` (interval, timeout
   min(2 s, interval/2)), ``run --for``; the same warm-up and window; CPU of the daemon and its check
   worker processes, RSS (VmRSS at the end of the window, VmHWM peak) of each.
4. Checks done in each contender's window: Monit from its cycle count (one pass per cycle; its log
   says nothing per passing check), the orchestrator from check_results.

Printed as ``name: value`` lines; the two contenders run one after the other, never at once.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from orchestrator.db.engine import Database  # noqa: E402
from orchestrator.db.models import CheckResultRow  # noqa: E402


def _window(pid: int, warmup_s: float, duration_s: float) -> dict[str, float]:
    time.sleep(warmup_s)
    cpu0, t0 = c.tree_cpu_s(pid), time.monotonic()
    time.sleep(duration_s)
    cpu, wall = c.tree_cpu_s(pid) - cpu0, time.monotonic() - t0
    rss, peak = c.status_kb(pid, "VmRSS"), c.status_kb(pid, "VmHWM")
    return {"cpu_s_per_min": cpu / wall * 60, "rss_mib": (rss + c.children_kb(pid, "VmRSS")) / 1024,
            "peak_mib": (peak + c.children_kb(pid, "VmHWM")) / 1024, "main_rss_mib": rss / 1024,
            "processes": 1 + len(c.children(pid))}


def monit(fleet: c.Fleet, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    lines = [f"set daemon {max(1, round(args.interval))}", f"set logfile {workdir / 'monit.log'}",
             f"set pidfile {workdir / 'monit.pid'}", f"set idfile {workdir / 'monit.id'}",
             f"set statefile {workdir / 'monit.state'}", ""]
    for i, port in enumerate(fleet.ports):
        lines += [f"check host m{i:05d} with address 127.0.0.1",
                  f'    if failed port {port} protocol http request "/health" then alert', ""]
    control = workdir / "monitrc"
    control.write_text("\n".join(lines))
    control.chmod(0o600)
    proc = c.start(["monit", "-I", "-c", str(control)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        hits0 = _hits(fleet)
        out = _window(proc.pid, args.warmup, args.duration)
        out["checks_per_s"] = (_hits(fleet) - hits0) / (args.warmup + args.duration)
    finally:
        c.stop(proc)
    return out


def _hits(fleet: c.Fleet) -> int:
    import requests

    return sum(requests.get(f"{url}/status", timeout=10).json()["hits"] for url in fleet.controls)


def orchestrator(fleet: c.Fleet, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    db_url = f"sqlite:///{workdir / 'bench.db'}"
    timeout = min(2.0, args.interval / 2)
    c.apply_components(db_url, [{"name": f"c{i:05d}", "url": fleet.url(p), "interval": f"{args.interval:g}s",
                                 "timeout": f"{timeout:g}s"} for i, p in enumerate(fleet.ports)], workdir)
    extra = [] if args.check_processes is None else ["--check-processes", str(args.check_processes)]
    with c.daemon(db_url, workdir, args.warmup + args.duration + 2, *extra) as proc:
        t0 = datetime.now(UTC)
        out = _window(proc.pid, args.warmup, args.duration)
        t1 = datetime.now(UTC)
        c.wait_exit(proc, 60)
    db = Database(db_url)
    try:
        with db.read() as session:
            n = session.scalar(select(func.count()).select_from(CheckResultRow).where(
                CheckResultRow.checked_at >= t0, CheckResultRow.checked_at < t1))
    finally:
        db.dispose()
    out["checks_per_s"] = n / (t1 - t0).total_seconds()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--warmup", type=float, default=None, help="default: 3 intervals, at least 5 s")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--check-processes", type=int, default=None)
    parser.add_argument("--no-monit", action="store_true")
    args = parser.parse_args()
    args.warmup = args.warmup if args.warmup is not None else max(5.0, 3 * args.interval)
    c.exit_on_sigterm()
    with_monit = not args.no_monit and shutil.which("monit") is not None
    print(f"machine: {c.machine()}; load {os.getloadavg()[0]:.2f}")
    print(f"fleet: {args.count} endpoints, interval {args.interval:g}s; warm-up {args.warmup:g}s, "
          f"window {args.duration:g}s")
    with c.workdir("bench-footprint-") as workdir, c.fleet(args.count) as fleet:
        mine = orchestrator(fleet, args, workdir)
        theirs = monit(fleet, args, workdir) if with_monit else None
    for name, r in (("orchestrator", mine), ("monit", theirs)):
        if r is None:
            print("monit: not installed (apt-get install -y monit)")
            continue
        print(f"{name}: CPU {r['cpu_s_per_min']:.2f} s/min, {r['checks_per_s']:.0f} checks/s, RSS "
              f"{r['rss_mib']:.0f} MiB in {r['processes']:.0f} process(es) (main {r['main_rss_mib']:.0f} MiB, "
              f"peak {r['peak_mib']:.0f} MiB)")
    if theirs:
        print(f"ratio orchestrator/monit: CPU {mine['cpu_s_per_min'] / theirs['cpu_s_per_min']:.2f}, "
              f"RSS {mine['rss_mib'] / theirs['rss_mib']:.1f}")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
