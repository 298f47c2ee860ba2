"""Web benchmarks: response times over a big history, whether web load delays checks, report time.

    python bench/web.py                       # all three parts
    python bench/web.py --part pages          # 10,000 components, 100,000 incidents: /, API, /metrics
    python bench/web.py --part lateness       # checks' lateness p99 with and without web load
    python bench/web.py --part report         # orchestrator report over 1,000,000 check results
    python bench/web.py --part metrics        # /metrics at 10,000 components: formats, switches, CPU a scrape
    python bench/web.py --part status         # /, /status/NAME, a component page with 30 days of rollups

1. ``pages``: the database is filled with ``--components`` components and ``--incidents`` incidents
   (one journal row each), then `orchestrator web` serves it on a loopback port and each URL is fetched
   ``--requests`` times over real HTTP: p50/p95.
2. ``lateness``: the real daemon with ``--http`` checks ``--fleet`` healthy loopback endpoints every
   second; the lateness p99 of its checks (from its own /metrics histogram) is taken over ``--window``
   seconds idle, then as long under 10 scrapes/s of /metrics plus 10 page loads/s, ``--rounds`` times.
3. ``report``: ``--results`` raw check results (with the per-minute rollups the daemon would have
   written) and 10,000 incidents, then `orchestrator report --since 30d -o FILE` is timed.
4. ``metrics``: ``--components`` components and ``--metrics-incidents`` incidents (each with its opened
   and resolved events); `orchestrator web` with and without per-component series answers
   ``--scrapes`` scrapes in each format (classic text, OpenMetrics): p50/p95, size, series, and the
   server's CPU per scrape, printed as a share of one core at one scrape every 15 s. The per-component
   latency histograms exist only in a checking daemon, so their cost is measured in-process: the same
   collector over the same database, with a histogram for every component, against the same without.
5. ``status``: ``--components`` components and 10,000 incidents as in ``pages``, plus 30 days of
   per-minute rollups (seeded directly, as the recorder writes them) for the ``--page-components``
   components a public status page shows in 4 groups, and 3 public updates on each of 10 incidents;
   then ``/``, ``/status/NAME``, its feed and one of those components' pages in each latency range are
   fetched ``--requests`` times over HTTP from `orchestrator web`: p50/p95.

Load average (``uptime``) is printed with each figure: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (  # noqa: E402
    apply_components,
    bench_env,
    daemon,
    exit_on_sigterm,
    fleet,
    log,
    orchestrator_cmd,
    percentile,
    start,
    stop,
    workdir,
)
from orchestrator.db.engine import Database  # noqa: E402
from orchestrator.db.migrate import ensure_schema  # noqa: E402
from orchestrator.db.models import (  # noqa: E402
    CheckResultRow,
    CheckRollup,
    Component,
    Incident,
    IncidentEventRow,
    JournalEntry,
    StateTransition,
)

PORT = 55463  # this benchmark's port (55460-55469)


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _insert(db: Database, model, rows: list[dict], chunk: int = 20_000) -> None:
    for i in range(0, len(rows), chunk):
        with db.write_conn() as conn:
            conn.execute(model.__table__.insert(), rows[i:i + chunk])


def seed_fleet(db: Database, components: int, incidents: int, now: datetime) -> None:
    rng = random.Random(7)
    states = ["up"] * 90 + ["down", "degraded", "flapping", "unknown", "paused"] * 2
    _insert(db, Component, [{
        "name": f"svc-{i:05d}", "check_kind": "http", "url": f"http://127.0.0.1:9/{i}", "check_spec": {},
        "interval_s": 10.0, "timeout_s": 2.0, "failure_threshold": 3, "success_threshold": 2, "plan": None,
        "criticality": "normal", "labels": {"team": f"t{i % 20}"}, "vars": {}, "active_target": "primary",
        "state": rng.choice(states), "state_since": now - timedelta(hours=1), "last_check_at": now,
        "last_latency_ms": rng.uniform(1, 50), "consecutive_failures": 0, "consecutive_successes": 3,
        "checks_total": 1000, "failures_total": 10, "flap_episode": 0, "breaker": {}, "generation": 1,
        "created_at": now - timedelta(days=60), "updated_at": now, "lease_epoch": 0,
    } for i in range(components)])
    _insert(db, StateTransition, [{"component_id": 1 + i % components, "at": now - timedelta(minutes=i % 1440),
                                   "from_state": "up", "to_state": "down", "reason": "bench"}
                                  for i in range(components * 2)])
    opened = [now - timedelta(minutes=5 * i) for i in range(incidents)]
    _insert(db, Incident, [{"component_id": 1 + i % components, "component_name": f"svc-{i % components:05d}",
                            "kind": "component", "status": "resolved" if i > 20 else "open", "resolution": "auto",
                            "reason": "bench", "opened_at": at, "updated_at": at, "resolved_at": at + timedelta(minutes=2)
                            if i > 20 else None, "reopen_count": 0, "details": {}} for i, at in enumerate(opened)])
    _insert(db, JournalEntry, [{"incident_id": i + 1, "component_id": 1 + i % components, "step_index": 0,
                                "attempt": 1, "strategy": "restart", "status": "succeeded", "executed": True,
                                "claimed_at": at, "started_at": at, "finished_at": at + timedelta(seconds=40),
                                "facts": {}, "verification": {"mode": "check", "passed": True}}
                               for i, at in enumerate(opened)])


def time_urls(base: str, urls: list[str], n: int) -> None:
    session = requests.Session()
    for url in urls:
        session.get(base + url, timeout=60).raise_for_status()  # warm
        times = []
        for _ in range(n):
            started = time.perf_counter()
            response = session.get(base + url, timeout=60)
            times.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
        print(f"    {url:<24} p50 {percentile(times, 50):7.1f} ms  p95 {percentile(times, 95):7.1f} ms  "
              f"({len(response.content) / 1024:.0f} KiB, {load()})", flush=True)


def part_pages(args) -> None:
    with workdir("bench-web-") as directory:
        db_url = f"sqlite:///{directory / 'web.db'}"
        db = Database(db_url)
        ensure_schema(db)
        log(f"seeding {args.components} components and {args.incidents} incidents")
        seed_fleet(db, args.components, args.incidents, datetime.now(UTC))
        db.dispose()
        print(f"pages over {args.components} components, {args.incidents} incidents (SQLite):")
        for flag, urls in (("--metrics-per-component", ["/", "/api/v1/components", "/metrics", "/api/v1/status"]),
                           ("--no-metrics-per-component", ["/metrics"])):
            proc = start(orchestrator_cmd(db_url, "web", "--http", f"127.0.0.1:{PORT}", "--log-level", "warning",
                                          flag), env=bench_env(directory))
            try:
                _wait_up(f"http://127.0.0.1:{PORT}/healthz")
                print(f"  {flag}:")
                time_urls(f"http://127.0.0.1:{PORT}", urls, args.requests)
            finally:
                stop(proc)


def _wait_up(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def _lateness_p99(base: str) -> tuple[list[tuple[float, float]], int]:
    """The daemon's cumulative lateness buckets [(le, count)] and how many checks they hold."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(base + "/metrics", timeout=30).text
    family = next(f for f in text_string_to_metric_families(text) if f.name == "orchestrator_check_lateness_seconds")
    buckets = [(float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")]
    return buckets, int(buckets[-1][1])


def _minus(after, before) -> list[tuple[float, float]]:
    return [(le, a - b) for (le, a), (_le, b) in zip(after, before, strict=True)]


def _plus(one, other) -> list[tuple[float, float]]:
    return [(le, a + b) for (le, a), (_le, b) in zip(one, other, strict=True)]


def _p99(counts) -> str:
    total = counts[-1][1]
    bound = next(le for le, n in counts if n >= 0.99 * total)
    return f"p99 ≤ {bound * 1000:g} ms over {int(total)} checks"


def _web_load(base: str, stop_at: float) -> None:
    def hammer(url: str) -> None:
        session = requests.Session()
        while time.monotonic() < stop_at:
            started = time.monotonic()
            session.get(base + url, timeout=30)
            time.sleep(max(0.0, 0.1 - (time.monotonic() - started)))  # 10 per second

    threads = [threading.Thread(target=hammer, args=(u,)) for u in ("/metrics", "/")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def part_lateness(args) -> None:
    """Idle and loaded windows alternate ``--rounds`` times, so a neighbour's burst on a shared machine
    shows as one odd window instead of deciding the comparison; the totals add up the windows."""
    with workdir("bench-web-late-") as directory, fleet(args.fleet) as endpoints:
        db_url = f"sqlite:///{directory / 'late.db'}"
        apply_components(db_url, [{"name": f"c{i:04d}", "url": url, "interval": "1s", "timeout": "500ms"}
                                  for i, url in enumerate(map(endpoints.url, endpoints.ports))], directory)
        base = f"http://127.0.0.1:{PORT}"
        with daemon(db_url, directory, args.window * 2 * args.rounds + 60, "--http", f"127.0.0.1:{PORT}",
                    "--no-metrics-per-component"):
            _wait_up(base + "/healthz")
            time.sleep(args.settle)  # first checks spread over their interval
            totals = {"idle": None, "loaded": None}
            print(f"{args.fleet} checks/s; lateness of their starts (the daemon's own histogram):")
            for n in range(args.rounds):
                for kind in ("idle", "loaded"):
                    before, _ = _lateness_p99(base)
                    if kind == "idle":
                        time.sleep(args.window)
                    else:
                        _web_load(base, time.monotonic() + args.window)
                    counts = _minus(_lateness_p99(base)[0], before)
                    totals[kind] = counts if totals[kind] is None else _plus(totals[kind], counts)
                    label = "no web load" if kind == "idle" else "10 scrapes/s + 10 pages/s"
                    print(f"  round {n + 1}, {label:<26} {_p99(counts)} ({load()})", flush=True)
            print(f"  all rounds, no web load:           {_p99(totals['idle'])}")
            print(f"  all rounds, 10 scrapes/s + 10 pages/s: {_p99(totals['loaded'])}", flush=True)


@contextmanager
def migrated(prefix: str) -> Iterator[tuple[Path, str, Database]]:
    """A work directory with a migrated SQLite database in it: (directory, its URL, the Database)."""
    with workdir(prefix) as directory:
        db_url = f"sqlite:///{directory / 'bench.db'}"
        db = Database(db_url)
        ensure_schema(db)
        yield directory, db_url, db


def part_report(args) -> None:
    with migrated("bench-web-report-") as (directory, db_url, db):
        now = datetime.now(UTC)
        components = 100
        log(f"seeding {args.results} check results, their rollups and {args.report_incidents} incidents")
        seed_fleet(db, components, args.report_incidents, now)
        per = args.results // components
        rng = random.Random(3)
        for cid in range(1, components + 1):
            rows = [{"component_id": cid, "checked_at": now - timedelta(seconds=10 * k), "ok": k % 97 != 0,
                     "reliable": True, "latency_ms": rng.uniform(1, 30)} for k in range(per)]
            _insert(db, CheckResultRow, rows, chunk=per)
            minutes = sorted({r["checked_at"].replace(second=0, microsecond=0) for r in rows})[:-1]
            _insert(db, CheckRollup, [{"component_id": cid, "minute": m, "checks": 6, "failures": 0,
                                       "latency_p50_ms": 10.0, "latency_p95_ms": 25.0, "latency_max_ms": 30.0}
                                      for m in minutes], chunk=len(minutes))
        db.dispose()
        out = directory / "report.html"
        started = time.perf_counter()
        subprocess.run(orchestrator_cmd(db_url, "report", "--since", "30d", "-o", str(out)), check=True,
                       env=bench_env(directory), stdout=subprocess.DEVNULL)
        took = time.perf_counter() - started
        print(f"report --since 30d over {args.results} results, {args.report_incidents} incidents: {took:.2f} s "
              f"({out.stat().st_size / 1024:.0f} KiB HTML, {load()})", flush=True)


SCRAPE_INTERVAL_S = 15.0  # Prometheus' usual scrape interval: CPU a scrape is shown as a share of it
FORMATS = (("text", "text/plain"), ("openmetrics", "application/openmetrics-text; version=1.0.0"))


def seed_events(db: Database, incidents: int, now: datetime) -> None:
    """An ``opened`` and a ``resolved`` event for each incident, as the lifecycle writes them."""
    rows = []
    for i in range(incidents):
        at = now - timedelta(minutes=5 * i)
        rows.append({"incident_id": i + 1, "at": at, "kind": "opened", "to_status": "open", "notified_at": at})
        rows.append({"incident_id": i + 1, "at": at + timedelta(minutes=2), "kind": "resolved",
                     "from_status": "recovering", "to_status": "resolved", "resolution": "auto", "notified_at": at})
    _insert(db, IncidentEventRow, rows)


def time_scrapes(base: str, accept: str, n: int, pid: int) -> str:
    """``n`` scrapes: p50/p95, size, series, and the server's CPU a scrape (all its threads)."""
    from bench._common import cpu_s

    session = requests.Session()
    headers = {"Accept": accept}
    session.get(base + "/metrics", headers=headers, timeout=60).raise_for_status()  # warm
    times, cpu_before = [], cpu_s(pid)
    for _ in range(n):
        started = time.perf_counter()
        response = session.get(base + "/metrics", headers=headers, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    cpu_ms = (cpu_s(pid) - cpu_before) / n * 1000
    series = sum(1 for line in response.text.splitlines() if line and not line.startswith("#"))
    return (f"p50 {percentile(times, 50):7.1f} ms  p95 {percentile(times, 95):7.1f} ms  "
            f"{len(response.content) / 1024:6.0f} KiB {series:7d} series  CPU {cpu_ms:6.1f} ms a scrape = "
            f"{cpu_ms / 1000 / SCRAPE_INTERVAL_S * 100:5.2f} % of a core at one scrape / {SCRAPE_INTERVAL_S:g} s")


def part_metrics(args) -> None:
    with migrated("bench-web-metrics-") as (directory, db_url, db):
        now = datetime.now(UTC)
        log(f"seeding {args.components} components and {args.metrics_incidents} incidents with their events")
        seed_fleet(db, args.components, args.metrics_incidents, now)
        seed_events(db, args.metrics_incidents, now)
        print(f"/metrics over {args.components} components, {args.metrics_incidents} incidents (SQLite, "
              f"`orchestrator web`, {args.scrapes} scrapes each):")
        for flag in ("--metrics-per-component", "--no-metrics-per-component"):
            proc = start(orchestrator_cmd(db_url, "web", "--http", f"127.0.0.1:{PORT}", "--log-level", "warning",
                                          flag), env=bench_env(directory))
            try:
                _wait_up(f"http://127.0.0.1:{PORT}/healthz")
                print(f"  {flag}:")
                for name, accept in FORMATS:
                    line = time_scrapes(f"http://127.0.0.1:{PORT}", accept, args.scrapes, proc.pid)
                    print(f"    {name:<12} {line} ({load()})", flush=True)
            finally:
                stop(proc)
        print("  per-component latency histograms (daemon only; in-process, collector + text writer):")
        for histograms in (False, True):
            print(f"    {'with' if histograms else 'without':<8}     {_in_process(db, histograms, args.scrapes)}",
                  flush=True)
        db.dispose()


def _in_process(db: Database, histograms: bool, n: int) -> str:
    """The collector over ``db`` with (or without) a filled latency histogram for every component."""
    from orchestrator.history.stats import LATENCY_BUCKETS_S, Histogram
    from orchestrator.web.exposition import exposition
    from orchestrator.web.metrics import registry_for
    from orchestrator.web.source import DatabaseSource

    with db.read() as session:
        ids = list(session.scalars(Component.__table__.select().with_only_columns(Component.id)))
    rng = random.Random(5)
    latency = {}
    for cid in ids:
        hist = latency[cid] = Histogram(LATENCY_BUCKETS_S)
        for _ in range(20):
            hist.observe(rng.uniform(0.001, 0.3))

    class Checked(DatabaseSource):  # stands in for a daemon that has checked every component
        def component_latency(self):
            return latency

    registry = registry_for(Checked(db), per_component=True, component_histograms=histograms)
    text = exposition(registry.collect())  # warm: the journal's figures and event counts are cached
    times, cpu = [], []
    for _ in range(n):
        started, cpu_started = time.perf_counter(), time.process_time()
        text = exposition(registry.collect())
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    return (f"p50 {percentile(times, 50):7.1f} ms  p95 {percentile(times, 95):7.1f} ms  {len(text) / 1024:6.0f} KiB "
            f"{series:7d} series  CPU {percentile(cpu, 50):6.1f} ms a scrape ({load()})")


def seed_status(db: Database, page_components: int, now: datetime) -> list[str]:
    """30 days of rollups for svc-00000 … and a status page over them; returns the page's components."""
    from orchestrator.components import statuspages
    from orchestrator.db.models import IncidentUpdate

    rng = random.Random(11)
    names = [f"svc-{i:05d}" for i in range(page_components)]
    first = now.replace(second=0, microsecond=0) - timedelta(days=30)
    for cid in range(1, page_components + 1):
        _insert(db, CheckRollup, [{
            "component_id": cid, "minute": first + timedelta(minutes=m), "checks": 6,
            "failures": 1 if rng.random() < 0.002 else 0, "latency_p50_ms": 10 + rng.random() * 5,
            "latency_p95_ms": 20 + rng.random() * 30, "latency_max_ms": 60.0} for m in range(30 * 1440)])
    _insert(db, IncidentUpdate, [{"incident_id": i + 1, "at": now - timedelta(minutes=5 * i - k), "state": state,
                                  "message": f"update {k} on incident {i + 1}", "public": True, "author": "bench"}
                                 for i in range(10) for k, state in enumerate(("investigating", "identified", "resolved"))])
    size = max(1, page_components // 4)
    groups = [statuspages.group_spec(f"Group {g}", names[g * size:(g + 1) * size], "--group")
              for g in range(4) if names[g * size:(g + 1) * size]]
    statuspages.add(db, statuspages.page_spec("public", "Bench status", groups))
    return names


def _uptime_share(db: Database, n: int) -> None:
    """In-process, the same run's baseline: the overview's model with and without the uptime windows."""
    from orchestrator.components.views import ComponentFilter
    from orchestrator.web import chartmodels, pagemodels
    from orchestrator.web.source import DatabaseSource

    source, real = DatabaseSource(db), chartmodels.uptimes
    times: dict[str, list[float]] = {"with uptime": [], "without": []}
    try:
        for _ in range(n):
            for label in times:
                chartmodels.uptimes = real if label == "with uptime" else (lambda _s, ids, _now: {i: {} for i in ids})
                started = time.perf_counter()
                pagemodels.overview(source, ComponentFilter(), None)
                times[label].append((time.perf_counter() - started) * 1000)
    finally:
        chartmodels.uptimes = real
    with_p50, without_p50 = percentile(times["with uptime"], 50), percentile(times["without"], 50)
    print(f"  overview model in-process, 100 components: p50 {with_p50:.1f} ms with uptime 24 h/7 d/30 d, "
          f"{without_p50:.1f} ms without (x{with_p50 / without_p50:.2f}, {load()})", flush=True)


def part_status(args) -> None:
    with workdir("bench-web-status-") as directory:
        db_url = f"sqlite:///{directory / 'web.db'}"
        db = Database(db_url)
        ensure_schema(db)
        now = datetime.now(UTC)
        log(f"seeding {args.components} components, 10000 incidents, 30 days of rollups for {args.page_components}")
        seed_fleet(db, args.components, 10_000, now)
        names = seed_status(db, args.page_components, now)
        _uptime_share(db, args.requests)
        db.dispose()
        print(f"status pages over {args.components} components, 30 days of rollups for the {len(names)} on the page "
              f"({len(names) * 30 * 1440} rows, SQLite):")
        proc = start(orchestrator_cmd(db_url, "web", "--http", f"127.0.0.1:{PORT}", "--log-level", "warning"),
                     env=bench_env(directory))
        try:
            _wait_up(f"http://127.0.0.1:{PORT}/healthz")
            started = time.perf_counter()  # the first view reads every finished day (then reused for 5 min)
            requests.get(f"http://127.0.0.1:{PORT}/status/public", timeout=60).raise_for_status()
            print(f"    /status/public, first view {(time.perf_counter() - started) * 1000:7.1f} ms  ({load()})")
            time_urls(f"http://127.0.0.1:{PORT}", ["/", "/status/public", "/status/public/feed.atom",
                                                   f"/components/{names[0]}?range=1h", f"/components/{names[0]}",
                                                   f"/components/{names[0]}?range=7d",
                                                   f"/components/{names[0]}?range=30d"], args.requests)
        finally:
            stop(proc)


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["pages", "lateness", "report", "metrics", "status", "all"], default="all")
    parser.add_argument("--components", type=int, default=10_000)
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--fleet", type=int, default=200, help="healthy components checked every second")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of each idle and each loaded window")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before the first window (lateness)")
    parser.add_argument("--rounds", type=int, default=3, help="idle/loaded window pairs (lateness)")
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--report-incidents", type=int, default=10_000)
    parser.add_argument("--metrics-incidents", type=int, default=None,
                        help="incidents for the metrics part [default: --incidents, at most 10,000]")
    parser.add_argument("--scrapes", type=int, default=10, help="scrapes per format and switch (metrics)")
    parser.add_argument("--page-components", type=int, default=20,
                        help="components on the status page, each with 30 days of rollups (status)")
    args = parser.parse_args()
    if args.metrics_incidents is None:
        args.metrics_incidents = min(args.incidents, 10_000)
    for name, part in (("pages", part_pages), ("lateness", part_lateness), ("report", part_report),
                       ("metrics", part_metrics), ("status", part_status)):
        if args.part in (name, "all"):
            part(args)


if __name__ == "__main__":
    main()
