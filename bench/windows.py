"""What maintenance windows cost the registry sync: 10,000 components, 20 recurring windows.

The daemon's registry sync runs every couple of seconds. Without windows or holds it is one aggregate
query; once any component is held, or any maintenance window exists, it reads the narrow row of every
component (plus its labels while windows exist) and matches the open windows against them. This bench
times one sync on a real SQLite file in four fleets of the same size, each against the same baseline
in the same run (one paused component: the pre-existing narrow-query path):

    python bench/windows.py [--components 10000] [--windows 20] [--runs 15]

Figures: the median and p90 milliseconds of one sync, and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.components.windows import WindowKind, WindowRequest, WindowService
from orchestrator.core.clock import FakeClock
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from orchestrator.db.models import Component
from orchestrator.health.sync import RegistrySync

#: a Sunday 01:30 UTC: 02:30 in Berlin, inside "0 2 * * SUN" for 2h
AT = datetime(2026, 12, 13, 1, 30, tzinfo=UTC)


class Sink:
    """Stands in for the judge: the sync's messages are counted, nothing is judged."""

    def __init__(self) -> None:
        self.messages = 0

    def send(self, message: object) -> None:
        self.messages += 1


def fleet(folder: Path, n: int) -> Database:
    db = Database(f"sqlite:///{folder / 'bench.db'}")
    ensure_schema(db)
    with db.write() as session:
        session.add_all(Component(
            name=f"c{i:05d}", url=f"http://127.0.0.1:9/{i}", check_spec={"url": f"http://127.0.0.1:9/{i}"},
            interval_s=10.0, timeout_s=2.0, labels={"team": "core" if i % 2 else "web", "shard": str(i % 20)},
            created_at=AT, updated_at=AT, state="up", state_since=AT) for i in range(n))
    return db


def timed_syncs(db: Database, clock: FakeClock, runs: int) -> list[float]:
    sync = RegistrySync(db, Sink(), clock=clock)  # type: ignore[arg-type]
    sync.sync()  # the first sync installs every component; the steady state is what repeats
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        sync.sync()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=10_000)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    clock = FakeClock(AT)
    with tempfile.TemporaryDirectory(prefix="bench-windows-") as tmp:
        db = fleet(Path(tmp), args.components)
        service = WindowService(db, clock=clock)
        rows = []
        with db.write() as session:  # baseline: one paused component keeps the narrow query running
            session.query(Component).filter(Component.name == "c00000").update(
                {"paused_until": AT + timedelta(days=1)})
        rows.append(("baseline: no windows, one component paused", timed_syncs(db, clock, args.runs)))
        with db.write() as session:
            session.query(Component).update({"paused_until": None})
        rows.append(("no windows, nothing held (fast path)", timed_syncs(db, clock, args.runs)))
        for i in range(args.windows):  # none open at AT (Mondays, 03:00 Berlin)
            service.add(WindowRequest(WindowKind.MAINTENANCE, f"shard={i}", cron="0 3 * * MON", duration_s=3600,
                                      tz="Europe/Berlin"))
        rows.append((f"{args.windows} recurring windows, none open", timed_syncs(db, clock, args.runs)))
        service.add(WindowRequest(WindowKind.MAINTENANCE, "team=core", cron="0 2 * * SUN", duration_s=7200,
                                  tz="Europe/Berlin"))
        rows.append((f"{args.windows + 1} windows, one open over half the fleet", timed_syncs(db, clock, args.runs)))
    base = statistics.median(rows[0][1])
    print(f"registry sync, {args.components} components, {args.runs} runs each (ms per sync)")
    print(f"{'fleet':<50} {'median':>8} {'p90':>8} {'vs baseline':>12}")
    for name, times in rows:
        p90 = sorted(times)[int(0.9 * (len(times) - 1))]
        print(f"{name:<50} {statistics.median(times):>8.1f} {p90:>8.1f} {statistics.median(times) / base:>11.2f}x")


if __name__ == "__main__":
    main()
