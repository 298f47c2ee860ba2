"""The randomized soak, long: a real daemon, a loopback fleet, a seeded walk of faults and operations,
the invariants I1-I7 of docs/guarantees.md checked every second (tests/soak.py is the engine).

    python bench/soak.py --minutes 30 --seed 7 --db sqlite
    python bench/soak.py --minutes 30 --seed 7 --db postgresql     # ORCHESTRATOR_TEST_PG_URL or --pg-url

Prints every operation as it runs, then: operations, restart actions, daemon runs, results written vs
dropped (from the daemons' stop lines), the longest write stall, detection-bound misses and every
invariant violation (which must be 0) with the seed and the operation log. Exit status 1 when an
invariant was violated.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402 - after the path set-up, like the other bench scripts

from orchestrator.db.engine import Database  # noqa: E402
from orchestrator.db.migrate import ensure_schema  # noqa: E402
from tests.soak import CALM_BETWEEN_S, Soak  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("ORCHESTRATOR_TEST_PG_URL"))
    parser.add_argument("--services", type=int, default=6)
    parser.add_argument("--calm-between", type=float, default=CALM_BETWEEN_S,
                        help="calm seconds before each disturbance of the daemon (tests/test_soak.py: 8)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--keep", action="store_true", help="keep the folder (logs) even without violations")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    folder = Path(tempfile.mkdtemp(prefix=f"soak-{seed}-"))
    schema = None
    if args.db == "postgresql":
        if not args.pg_url:
            parser.error("--db postgresql needs --pg-url or ORCHESTRATOR_TEST_PG_URL")
        schema = f"soak_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(args.pg_url)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in args.pg_url else "?"
        url = f"{args.pg_url}{sep}options={quote(f'-csearch_path={schema}')}"
    else:
        url = f"sqlite:///{folder / 'orchestrator.db'}"
    print(f"soak seed={seed} db={args.db} minutes={args.minutes:g} folder={folder}", flush=True)
    try:
        database = Database(url)
        ensure_schema(database)
        database.dispose()
        result = Soak(seed=seed, folder=folder, db_url=url, duration_s=args.minutes * 60, services=args.services,
                      calm_between_s=args.calm_between,
                      log=(lambda line: None) if args.quiet else (lambda line: print(line, flush=True))).run()
        print(result.report())
    finally:
        if schema is not None:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            admin.dispose()
    if not result.violations and not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"daemon logs and the stub's log kept in {folder}")
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
