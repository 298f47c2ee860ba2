"""Push (heartbeat) monitors at scale: pings to the daemon's own web server, their cost beside an HTTP check,
and how late a missing ping is noticed.

    python bench/push.py --monitors 10000 --window 20 --period 40

1. Register ``--monitors`` push monitors (``period`` ``--period``, grace 1 s, re-reported every hour while
   late): their definition validated by the same model as ``apply -f``, the rows inserted in bulk (an
   ``apply -f`` of 10,000 components takes 40-60 s here, a third of the run); run ``orchestrator run
   --http`` as a subprocess.
2. Idle: once the daemon has recorded every monitor's move into maintenance (step 4), its CPU per second
   with every monitor watched and nothing pinging (``--idle`` seconds), shown for scale.
3. Pings: every monitor pings its success URL once, at a uniformly random moment of a ``--window``-second
   window, from ``--senders`` threads on kept-alive connections. A reader polls ``push_pings`` every 10 ms:
   ping-to-recorded latency is from just before the request is sent to the row seen committed (it
   includes the HTTP round trip and up to one poll). CPU per ping: the daemon's CPU from the first
   ping until every ping is recorded, divided by the pings (its idle share included).
4. Lateness: no monitor pings again, so each is late ``period + grace`` after its success ping. From the
   database: the late verdict's ``checked_at`` minus (the success ping's ``received_at`` + period +
   grace), both written by the daemon (its wall clock); the deadline itself is watched on the monotonic
   clock. Reported as detected − expected (positive: noticed after the deadline), beside the daemon's
   own figure (``lateness_ms`` of the verdict, on the monotonic clock). The monitors are registered in
   maintenance (a person's hold), so the verdicts are recorded but open no incident: 10,000 incidents
   opening within 20 s on SQLite measure the incident coordinator's writes, not detection (late → DOWN
   → incident → plan is tested end to end in tests/test_push.py).
5. HTTP baseline, same run, its own daemon and database: ``--checks`` loopback endpoints (bench/fleet.py)
   checked every second; the daemon's CPU over ``--check-window`` seconds divided by the checks it stored
   in that window (its idle share included). Both figures are the daemon process's CPU (web server,
   judge, recorder and database writes included), per event.

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
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from orchestrator.db.engine import Database  # noqa: E402

#: the push monitors' grace, seconds (the shortest a person would set; lateness is measured against it)
GRACE_S = 1.0
#: how often the reader looks for new ping rows, seconds (the latency's resolution)
READ_EVERY_S = 0.01
#: monitors with a late verdict after their success ping
LATE_AFTER_PING = ("(SELECT DISTINCT r.component_id FROM check_results r JOIN push_pings p ON p.component_id = "
                   "r.component_id WHERE r.error LIKE 'late:%' AND r.checked_at > p.received_at) AS late")
#: seconds the daemon may take past the last deadline to record every late monitor
LATE_SLACK_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_baseline(args, workdir: Path) -> dict[str, float]:
    """CPU per HTTP check of the daemon: ``--checks`` endpoints every second."""
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
    busy = cpu1 - cpu0
    return {"http_checks": checks, "http_checks_per_s": checks / (t1 - t0),
            "http_cpu_ms_per_check": busy / checks * 1000 if checks else float("nan")}


def register(db: Database, count: int, period_s: float) -> None:
    """``count`` push monitors, each with its ping token, as ``component add --push`` would store them."""
    from orchestrator.components.definition import ComponentSpec
    from orchestrator.db.migrate import ensure_schema
    from orchestrator.db.models import Component, PushMonitor

    ensure_schema(db)
    d = ComponentSpec(name="p", push={"period": f"{period_s:g}s", "grace": f"{GRACE_S:g}s"}, interval="1h").definition()
    now = datetime.now(UTC)
    rows = [{"name": f"p{i:05d}", "check_kind": "push", "url": None, "check_spec": d["check"],
             "interval_s": d["interval_s"], "timeout_s": d["timeout_s"], "failure_threshold": d["failure_threshold"],
             "success_threshold": d["success_threshold"], "criticality": "normal", "labels": {}, "vars": {},
             "secret_vars": {}, "early_warning": {}, "active_target": "primary", "state": "unknown", "state_since": now,
             "consecutive_failures": 0, "consecutive_successes": 0, "checks_total": 0, "failures_total": 0,
             "flap_episode": 0, "breaker": {}, "generation": 1, "created_at": now, "updated_at": now, "lease_epoch": 0,
             "maintenance_until": now + timedelta(days=1)}
            for i in range(count)]
    with db.write_conn() as conn:
        conn.execute(Component.__table__.insert(), rows)
        ids = [cid for (cid,) in conn.exec_driver_sql("SELECT id FROM components ORDER BY id")]
        conn.execute(PushMonitor.__table__.insert(), [{"component_id": cid, "token": str(uuid.uuid4()),
                                                       "created_at": now} for cid in ids])


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
    db = Database(db_url)
    register(db, args.monitors, args.period)
    with db.engine.connect() as conn:
        tokens = conn.exec_driver_sql("SELECT component_id, token FROM push_monitors").all()
    port = free_port()
    run_for = args.idle + args.window + args.period + GRACE_S + LATE_SLACK_S + 30
    with c.daemon(db_url, workdir, run_for, "--http", f"127.0.0.1:{port}", "--check-processes", "0") as proc:
        c.poll(lambda: _answers(port), 30, "web server")
        c.poll(lambda: _count(db, "state_transitions") >= len(tokens), 60, "every monitor in maintenance")
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
        c.poll(lambda: _count(db, LATE_AFTER_PING) >= pings_done(reader), args.period + GRACE_S + args.window
               + LATE_SLACK_S, "every monitor late", interval_s=0.5)
    with db.engine.connect() as conn:
        pinged = dict(conn.exec_driver_sql("SELECT component_id, received_at FROM push_pings").all())
        lates = conn.exec_driver_sql("SELECT component_id, checked_at, lateness_ms FROM check_results "
                                     "WHERE error LIKE 'late:%' ORDER BY id").all()
    first: dict[int, tuple] = {}
    early = set()
    for cid, at, own_ms in lates:
        if _parse(at) <= _parse(pinged[cid]):
            early.add(cid)  # late by its first deadline (counted from the daemon's start), before its ping
        else:
            first.setdefault(cid, (_parse(at) - _parse(pinged[cid]), own_ms))
    db.dispose()
    due_s = args.period + GRACE_S
    lateness = [delay.total_seconds() - due_s for delay, _ in first.values()]
    own = [own_ms for _, own_ms in first.values()]
    latency = [(reader.seen[cid] - sent[cid]) * 1000 for cid in sent if cid in reader.seen]
    pings = len(latency)
    return {"monitors": args.monitors, "pings": pings, "ping_errors": len(errors),
            "ping_to_recorded_ms_p50": c.percentile(latency, 50), "ping_to_recorded_ms_p99": c.percentile(latency, 99),
            "ping_to_recorded_ms_max": max(latency, default=float("nan")),
            "pings_per_s": pings / window, "idle_cpu_pct": idle_cpu_per_s * 100,
            "cpu_ms_per_ping": cpu_pings / pings * 1000 if pings else float("nan"),
            "late_detected": len(lateness), "late_before_ping": len(early), "lateness_ms_p50": c.percentile(lateness, 50) * 1000,
            "lateness_ms_p99": c.percentile(lateness, 99) * 1000,
            "lateness_ms_max": max(lateness, default=float("nan")) * 1000,
            "lateness_ms_min": min(lateness, default=float("nan")) * 1000,
            "own_lateness_ms_p50": c.percentile(own, 50), "own_lateness_ms_p99": c.percentile(own, 99)}


def pings_done(reader: Reader) -> int:
    return len(reader.seen)


def _parse(value):
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
        f"CPU per HTTP check: {r['http_cpu_ms_per_check']:.2f} ms ({r['http_checks']} checks at "
        f"{r['http_checks_per_s']:.0f}/s); a ping costs {r['cpu_ms_per_ping'] / r['http_cpu_ms_per_check']:.2f} "
        "HTTP checks",
        f"late detection (detected - expected): p50 {r['lateness_ms_p50']:.0f} ms, p99 {r['lateness_ms_p99']:.0f} ms, "
        f"max {r['lateness_ms_max']:.0f} ms, min {r['lateness_ms_min']:.0f} ms over {r['late_detected']} monitors"
        f" ({r['late_before_ping']} were late once before their ping: the run was slow to start pinging)",
        f"late detection, the daemon's own lateness_ms (monotonic): p50 {r['own_lateness_ms_p50']:.0f} ms, "
        f"p99 {r['own_lateness_ms_p99']:.0f} ms",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=20.0, help="seconds over which the pings are spread")
    parser.add_argument("--period", type=float, default=40.0, help="the monitors' period, seconds (> window + 8)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured before the pings")
    parser.add_argument("--senders", type=int, default=4, help="pinging connections")
    parser.add_argument("--checks", type=int, default=200, help="HTTP endpoints of the baseline (checked every 1 s)")
    parser.add_argument("--check-window", type=float, default=10.0, help="seconds of the HTTP baseline")
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
        result.update(http_baseline(args, workdir))
    print(json.dumps(result) if args.json else report(result), flush=True)


if __name__ == "__main__":
    main()
