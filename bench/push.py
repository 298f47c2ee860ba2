"""Push (heartbeat) monitors at scale: pings to the daemon's own web server, their cost beside an HTTP check,
and how late a missing ping is noticed.

    python bench/push.py --monitors 10000 --window 25 --period 40

1. Register ``--monitors`` push monitors (``period`` ``--period``, grace 1 s, re-reported every hour while
   late) with ``orchestrator apply -f`` and run ``orchestrator run --http`` as a subprocess.
2. Idle: the daemon's CPU per second with every monitor watched and nothing pinging (``--idle`` seconds).
3. Pings: every monitor pings its success URL once, at a uniformly random moment of a ``--window``-second
   window, from ``--senders`` threads on kept-alive connections. A reader polls ``push_pings`` every 10 ms:
   ping-to-recorded latency is from just before the request is sent to the row seen committed (it
   includes the HTTP round trip and up to one poll). CPU per ping: the daemon's CPU over the window
   minus its idle CPU, divided by the pings.
4. Lateness: no monitor pings again, so each is late ``period + grace`` after its success ping. From the
   database: the DOWN transition's time minus (the success ping's ``received_at`` + period + grace),
   both written by the daemon (its wall clock); the deadline itself is watched on the monotonic clock.
   Reported as detected − expected (positive: noticed after the deadline).
5. HTTP baseline, same run, its own daemon and database: ``--checks`` loopback endpoints (bench/fleet.py)
   checked every second; the daemon's CPU over ``--check-window`` seconds minus the idle CPU of step 2,
   divided by the checks it stored in that window. Both figures are the daemon process's CPU (its web
   server, judge, recorder and database writes included), per event.

Figures go to stdout as ``name: value`` lines (``--json`` for one JSON object); progress to stderr.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from orchestrator.db.engine import Database  # noqa: E402

#: the push monitors' grace, seconds (the shortest a person would set; lateness is measured against it)
GRACE_S = 1.0
#: how often the reader looks for new ping rows, seconds (the latency's resolution)
READ_EVERY_S = 0.01
#: seconds the daemon may take past the last deadline to record every late monitor
LATE_SLACK_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_baseline(args, workdir: Path, idle_cpu_per_s: float) -> dict[str, float]:
    """CPU per HTTP check of the daemon: ``--checks`` endpoints every second, the idle CPU taken off."""
    db_url = f"sqlite:///{workdir / 'checks.db'}"
    with c.fleet(args.checks) as fleet:
        c.apply_components(db_url, [{"name": f"h{i:04d}", "url": fleet.url(p), "interval": "1s",
                                     "timeout": "500ms"} for i, p in enumerate(fleet.ports)], workdir)
        warmup = 3.0
        with c.daemon(db_url, workdir, warmup + args.check_window + 5, "--check-processes", "0") as proc:
            time.sleep(warmup)
            db = Database(db_url)
            n0, cpu0, t0 = _count(db, "check_results"), c.cpu_s(proc.pid), time.monotonic()
            time.sleep(args.check_window)
            n1, cpu1, t1 = _count(db, "check_results"), c.cpu_s(proc.pid), time.monotonic()
            db.dispose()
    checks = n1 - n0
    busy = cpu1 - cpu0 - idle_cpu_per_s * (t1 - t0)
    return {"http_checks": checks, "http_checks_per_s": checks / (t1 - t0),
            "http_cpu_ms_per_check": busy / checks * 1000 if checks else float("nan")}


def _count(db: Database, table: str) -> int:
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() or 0)


class Reader(threading.Thread):
    """Polls push_pings for new rows; the monotonic time each component's first row was seen."""

    def __init__(self, db: Database) -> None:
        super().__init__(daemon=True)
        self.db, self.seen, self.after, self.halt = db, {}, 0, threading.Event()

    def run(self) -> None:
        with self.db.engine.connect() as conn:
            while not self.halt.is_set():
                rows = conn.exec_driver_sql(f"SELECT id, component_id FROM push_pings WHERE id > {self.after} "
                                            "ORDER BY id").all()
                conn.commit()  # a new snapshot for the next read
                now = time.monotonic()
                for row_id, cid in rows:
                    self.seen.setdefault(cid, now)
                    self.after = row_id
                self.halt.wait(READ_EVERY_S)


def send_pings(port: int, plan: list[tuple[float, int, str]], t0: float, sent: dict[int, float],
               errors: list[str]) -> None:
    """One kept-alive connection; each ping at its moment (plan: (offset, component id, token))."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for offset, cid, token in plan:
        wait = t0 + offset - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sent[cid] = time.monotonic()
        try:
            conn.request("GET", f"/ping/{token}")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors.append(f"{response.status}")
        except (OSError, http.client.HTTPException) as exc:
            errors.append(type(exc).__name__)
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.close()


def push_run(args, workdir: Path) -> dict[str, float]:
    db_url = f"sqlite:///{workdir / 'push.db'}"
    c.log(f"registering {args.monitors} push monitors")
    c.apply_components(db_url, [{"name": f"p{i:05d}", "push": {"period": f"{args.period:g}s", "grace": "1s"},
                                 "interval": "1h"} for i in range(args.monitors)], workdir)
    db = Database(db_url)
    with db.engine.connect() as conn:
        tokens = conn.exec_driver_sql("SELECT component_id, token FROM push_monitors").all()
    port = free_port()
    run_for = args.idle + args.window + args.period + GRACE_S + LATE_SLACK_S + 30
    with c.daemon(db_url, workdir, run_for, "--http", f"127.0.0.1:{port}", "--check-processes", "0") as proc:
        c.poll(lambda: _answers(port), 30, "web server")
        cpu0, t0 = c.cpu_s(proc.pid), time.monotonic()
        time.sleep(args.idle)
        idle_cpu_per_s = (c.cpu_s(proc.pid) - cpu0) / (time.monotonic() - t0)
        rng = random.Random(args.seed)
        plan = sorted((rng.uniform(0, args.window), cid, token) for cid, token in tokens)
        reader = Reader(db)
        reader.start()
        sent: dict[int, float] = {}
        errors: list[str] = []
        c.log(f"pinging: {len(plan)} pings over {args.window:g}s from {args.senders} connections")
        start, cpu_start = time.monotonic() + 0.2, c.cpu_s(proc.pid)
        senders = [threading.Thread(target=send_pings, args=(port, plan[i::args.senders], start, sent, errors))
                   for i in range(args.senders)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        c.poll(lambda: len(reader.seen) >= len(plan) - len(errors), 30, "every ping recorded")
        cpu_pings, window = c.cpu_s(proc.pid) - cpu_start, time.monotonic() - start
        reader.halt.set()
        c.log("waiting for every monitor to be late")
        c.poll(lambda: _count(db, "state_transitions WHERE to_state = 'down'") >= len(plan), args.period + GRACE_S
               + args.window + LATE_SLACK_S, "every monitor DOWN", interval_s=0.5)
    with db.engine.connect() as conn:
        late = conn.exec_driver_sql(
            "SELECT p.received_at, min(t.at) FROM push_pings p JOIN state_transitions t "
            "ON t.component_id = p.component_id AND t.to_state = 'down' AND t.at > p.received_at "
            "WHERE p.kind = 'success' GROUP BY p.component_id, p.received_at").all()
    db.dispose()
    due_s = args.period + GRACE_S
    lateness = [(_parse(down) - _parse(pinged)).total_seconds() - due_s for pinged, down in late]
    latency = [(reader.seen[cid] - sent[cid]) * 1000 for cid in sent if cid in reader.seen]
    pings = len(latency)
    return {"monitors": args.monitors, "pings": pings, "ping_errors": len(errors),
            "ping_to_recorded_ms_p50": c.percentile(latency, 50), "ping_to_recorded_ms_p99": c.percentile(latency, 99),
            "ping_to_recorded_ms_max": max(latency, default=float("nan")),
            "pings_per_s": pings / window, "idle_cpu_pct": idle_cpu_per_s * 100,
            "cpu_ms_per_ping": (cpu_pings - idle_cpu_per_s * window) / pings * 1000 if pings else float("nan"),
            "late_detected": len(lateness), "lateness_ms_p50": c.percentile(lateness, 50) * 1000,
            "lateness_ms_p99": c.percentile(lateness, 99) * 1000,
            "lateness_ms_max": max(lateness, default=float("nan")) * 1000,
            "lateness_ms_min": min(lateness, default=float("nan")) * 1000}


def _parse(value):
    from datetime import UTC, datetime

    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        return True
    except OSError:
        return False


def report(r: dict[str, float]) -> str:
    return "\n".join([
        f"machine: {c.machine()}",
        f"push monitors: {r['monitors']}, pings: {r['pings']} at {r['pings_per_s']:.0f}/s, errors: {r['ping_errors']}",
        f"ping-to-recorded: p50 {r['ping_to_recorded_ms_p50']:.1f} ms, p99 {r['ping_to_recorded_ms_p99']:.1f} ms, "
        f"max {r['ping_to_recorded_ms_max']:.1f} ms",
        f"CPU per ping: {r['cpu_ms_per_ping']:.2f} ms (idle with every monitor watched: {r['idle_cpu_pct']:.1f} % "
        f"of a core)",
        f"CPU per HTTP check: {r['http_cpu_ms_per_check']:.2f} ms, same idle taken off ({r['http_checks']} checks at "
        f"{r['http_checks_per_s']:.0f}/s); a ping costs {r['cpu_ms_per_ping'] / r['http_cpu_ms_per_check']:.2f} "
        "HTTP checks",
        f"late detection (detected - expected): p50 {r['lateness_ms_p50']:.0f} ms, p99 {r['lateness_ms_p99']:.0f} ms, "
        f"max {r['lateness_ms_max']:.0f} ms, min {r['lateness_ms_min']:.0f} ms over {r['late_detected']} monitors",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=25.0, help="seconds over which the pings are spread")
    parser.add_argument("--period", type=float, default=40.0, help="the monitors' period, seconds (> window + 8)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured before the pings")
    parser.add_argument("--senders", type=int, default=4, help="pinging connections")
    parser.add_argument("--checks", type=int, default=200, help="HTTP endpoints of the baseline (checked every 1 s)")
    parser.add_argument("--check-window", type=float, default=15.0, help="seconds of the HTTP baseline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (databases, daemon logs)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = parser.parse_args(argv)
    if args.period < args.window + args.idle + 8:
        parser.error("--period must exceed --window + --idle + 8 s: every monitor must ping before its first deadline")
    c.exit_on_sigterm()
    with c.workdir("bench-push-", keep=args.keep) as workdir:
        result = push_run(args, workdir)
        c.log(f"HTTP baseline: {args.checks} endpoints every 1 s")
        result.update(http_baseline(args, workdir, result["idle_cpu_pct"] / 100))
    print(json.dumps(result) if args.json else report(result), flush=True)


if __name__ == "__main__":
    main()
