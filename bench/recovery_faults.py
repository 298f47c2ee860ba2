"""Recovery under faults, many rounds: the long version of tests/test_recovery_faults.py.

    python bench/recovery_faults.py                        # 20 rounds of kill and of SQLite write errors
    python bench/recovery_faults.py --rounds 5 --faults kill
    python bench/recovery_faults.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test  # + PostgreSQL

One service that only its restart command repairs (tests/fault_rig.py), checked every 200 ms, one
restart step. Each round breaks it and, while it is being recovered, injects one fault:

- ``kill``: SIGKILL of the daemon (a real process) at a moment that moves from round to round (the
  command running and outliving its owner, verifying, just after the incident opened), and a new
  daemon started 1 s later;
- ``sqlite``: SQLite refusing every write (``PRAGMA query_only``) while the step's command ends, 1 s;
- ``pgcut``: PostgreSQL cut off (a TCP proxy) while the step's command ends, 1 s (needs ``--pg-url``).

Printed per fault: rounds settled (every incident resolved or escalated), seconds from the fault to
settled (median, max), and the broken promises the rig finds (an attempt run twice, an action on a
healthy service, journal and command log disagreeing, a row left running) — all must be 0.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402 - after the path set-up, like the other bench scripts
from sqlalchemy import event  # noqa: E402

from orchestrator.components.definition import ComponentSpec  # noqa: E402
from orchestrator.components.registry import Registry  # noqa: E402
from orchestrator.db.engine import Database  # noqa: E402
from orchestrator.db.migrate import ensure_schema  # noqa: E402
from tests.daemon_helpers import poll, running_daemon  # noqa: E402
from tests.fault_rig import (  # noqa: E402
    KILL_MOMENTS,
    RepairableServer,
    Stub,
    break_and_kill,
    break_during_outage,
    plan_file,
    problems,
    settled,
    start_daemon,
    up,
)
from tests.tcp_proxy import TcpProxy  # noqa: E402

FAST = {"interval": 0.2, "timeout": 0.1, "failure_threshold": 2, "success_threshold": 1}
SETTLE_S = 60.0


def _prepare(db: Database, folder: Path) -> tuple[RepairableServer, Stub, Path]:
    flag = folder / "healthy"
    flag.touch()
    stub = Stub(folder, flag)
    server = RepairableServer(flag)
    Registry(db, plan_names={"p"}).add(ComponentSpec(name="svc", url=server.url, plan="p", **FAST))
    return server, stub, plan_file(folder, stub)


def kill_rounds(db_url: str, rounds: int, folder: Path) -> tuple[list[float], list[str]]:
    db = Database(db_url)
    ensure_schema(db)
    server, stub, plans = _prepare(db, folder)
    daemon = start_daemon(db_url, plans, folder)
    took: list[float] = []
    try:
        for n in range(rounds):
            started = time.monotonic()
            break_and_kill(db, server, stub, daemon, *KILL_MOMENTS[n % len(KILL_MOMENTS)])
            time.sleep(1.0)  # restarted 1 s later, as systemd would after a crash (faster than its 5 s)
            daemon = start_daemon(db_url, plans, folder)
            poll(lambda: settled(db) and server.healthy(), SETTLE_S)
            took.append(time.monotonic() - started)
        return took, problems(db, stub)
    finally:
        daemon.kill()
        daemon.wait(10)
        server.stop()
        db.dispose()


def cut_rounds(db_url: str, rounds: int, folder: Path, cut, heal, daemon_url: str | None = None,
               on_daemon=None) -> tuple[list[float], list[str]]:
    db = Database(db_url)
    ensure_schema(db)
    server, stub, plans = _prepare(db, folder)
    took: list[float] = []
    try:
        with running_daemon(daemon_url or db_url, plans_path=plans) as daemon:
            if on_daemon is not None:
                on_daemon(daemon)
            for n in range(rounds):
                started = time.monotonic()
                break_during_outage(db, server, stub, folder / f"gate-{n}", cut, heal, away_s=1.0)
                poll(lambda: settled(db) and up(db), SETTLE_S)
                took.append(time.monotonic() - started)
        return took, problems(db, stub)
    finally:
        server.stop()
        db.dispose()


def sqlite_rounds(rounds: int, folder: Path) -> tuple[list[float], list[str]]:
    state = {"on": False}

    def hook(daemon) -> None:
        event.listen(daemon.db.engine, "checkout",
                     lambda conn, _r, _p: conn.execute(f"PRAGMA query_only = {int(state['on'])}"))
        state["daemon"] = daemon

    def cut() -> None:
        state["on"] = True
        state["daemon"].db.engine.pool.dispose()

    def heal() -> None:
        state["on"] = False

    return cut_rounds(f"sqlite:///{folder / 'orchestrator.db'}", rounds, folder, cut, heal, on_daemon=hook)


def pg_schema(pg_url: str) -> tuple[str, callable]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()

    sep = "&" if "?" in pg_url else "?"
    return f"{pg_url}{sep}options={quote(f'-csearch_path={schema}')}", drop


def pgcut_rounds(pg_url: str, rounds: int, folder: Path) -> tuple[list[float], list[str]]:
    url, drop = pg_schema(pg_url)
    parts = urlsplit(url)
    proxy = TcpProxy(parts.hostname, parts.port or 5432)
    proxied = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port or 5432}", f":{proxy.port}")))
    try:
        return cut_rounds(url, rounds, folder, proxy.cut, proxy.restore, daemon_url=proxied)
    finally:
        proxy.cut()
        drop()


def report(name: str, rounds: int, took: list[float], found: list[str]) -> bool:
    print(f"{name}: {len(took)}/{rounds} rounds settled; fault→settled median {statistics.median(took):.2f} s, "
          f"max {max(took):.2f} s; broken promises {len(found)}", flush=True)
    for line in found[:10]:
        print(f"  {line}")
    return len(took) == rounds and not found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--faults", default="kill,sqlite,pgcut", help="comma-separated: kill, sqlite, pgcut")
    parser.add_argument("--pg-url", default=None, help="PostgreSQL for the kill and pgcut rounds")
    args = parser.parse_args(argv)
    # the in-process daemons log every refused write; keep that out of the figures
    logging.basicConfig(filename=str(Path(tempfile.gettempdir()) / "bench-recovery-faults.log"), level=logging.INFO)
    good = True
    for fault in args.faults.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-faults-{fault}-") as tmp:
            folder = Path(tmp)
            if fault == "kill":
                good &= report("kill -9, restart after 1 s (SQLite)", args.rounds,
                               *kill_rounds(f"sqlite:///{folder / 'orchestrator.db'}", args.rounds, folder))
                if args.pg_url:
                    url, drop = pg_schema(args.pg_url)
                    try:
                        (folder / "pg").mkdir()
                        good &= report("kill -9, restart after 1 s (PostgreSQL)", args.rounds,
                                       *kill_rounds(url, args.rounds, folder / "pg"))
                    finally:
                        drop()
            elif fault == "sqlite":
                good &= report("SQLite refusing writes for 1 s mid-step", args.rounds,
                               *sqlite_rounds(args.rounds, folder))
            elif fault == "pgcut" and args.pg_url:
                good &= report("PostgreSQL cut for 1 s mid-step", args.rounds,
                               *pgcut_rounds(args.pg_url, args.rounds, folder))
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
