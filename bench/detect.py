"""Detection latency: a fault injected into an endpoint → DOWN recorded by the real daemon.

    python bench/detect.py --trials 10

Three fleet endpoints per trial, one per fault kind (crash: stop listening and cut connections;
500; hang: read the request, never answer), each registered with interval 1 s, timeout 0.5 s,
failure_threshold 2, success_threshold 1 (retry interval by default min(1 s, interval / 5) = 200 ms).
Each trial uses fresh components: faults repeated on one component every few seconds would (rightly)
make it FLAPPING, which goes DOWN only once its history settles.

Each trial: wait until its components are UP, sleep a random part of the interval (so the fault
lands anywhere in the check cycle), inject the three faults at once, then poll the database with a
deadline for each component's DOWN transition; recover the endpoints. Latency is measured to the
moment the verdict was known: the tripping check's start (``state_transitions.at``) plus its
latency; ``at`` alone is shown too.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from orchestrator.db.engine import Database  # noqa: E402
from orchestrator.db.models import CheckResultRow, Component, StateTransition  # noqa: E402

FAULTS = ("crash", "500", "hang")
#: longest a trial waits for a DOWN (or an UP after recovery) before the run fails
TRIAL_DEADLINE_S = 30.0
POLL_S = 0.02


def poll(predicate, timeout_s: float, what: str):
    """The first truthy value of ``predicate`` within ``timeout_s``; RuntimeError otherwise."""
    return c.poll(predicate, timeout_s, what, POLL_S)


def all_up(db: Database, ids: list[int]) -> bool:
    with db.read() as session:
        states = session.scalars(select(Component.state).where(Component.id.in_(ids))).all()
    return len(states) == len(ids) and all(s == "up" for s in states)


def down_after(db: Database, component_id: int, since: datetime) -> tuple[float, float] | None:
    """(seconds to ``at``, seconds to the verdict) of the first DOWN after ``since``, or None."""
    with db.read() as session:
        at = session.scalar(select(StateTransition.at).where(
            StateTransition.component_id == component_id, StateTransition.to_state == "down",
            StateTransition.at >= since).order_by(StateTransition.at).limit(1))
        if at is None:
            return None
        latency_ms = session.scalar(select(CheckResultRow.latency_ms).where(
            CheckResultRow.component_id == component_id, CheckResultRow.checked_at == at))
    if latency_ms is None:
        return None  # the transition commits first; its result follows within a flush
    to_at = (at - since).total_seconds()
    return to_at, to_at + latency_ms / 1000.0


def measure(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    with c.workdir("bench-detect-", args.keep) as workdir:
        return _measure(args, workdir)


def _measure(args: argparse.Namespace, workdir: Path) -> dict[str, dict[str, list[float]]]:
    db_url = f"sqlite:///{workdir / 'bench.db'}"
    rng = random.Random(args.seed)
    out: dict[str, dict[str, list[float]]] = {f: {"verdict": [], "at": []} for f in FAULTS}
    with c.fleet(len(FAULTS) * args.trials) as fleet:
        keys = [(fault, trial) for trial in range(args.trials) for fault in FAULTS]
        port_of = dict(zip(keys, fleet.ports, strict=True))
        c.apply_components(db_url, [
            {"name": f"{fault}-{trial}", "url": fleet.url(port), "interval": f"{args.interval:g}s",
             "timeout": f"{args.timeout:g}s", "failure_threshold": 2, "success_threshold": 1}
            for (fault, trial), port in port_of.items()], workdir)
        run_for = args.trials * (args.interval * 8 + 5) + 30  # a bound; stopped as soon as it is done
        with c.daemon(db_url, workdir, run_for) as proc:
            db = Database(db_url)
            try:
                with db.read() as session:
                    ids = dict(session.execute(select(Component.name, Component.id)).all())
                for trial in range(args.trials):
                    comp = {f: ids[f"{f}-{trial}"] for f in FAULTS}
                    poll(lambda ids_=list(comp.values()): all_up(db, ids_), TRIAL_DEADLINE_S, "components UP")
                    time.sleep(rng.uniform(0, args.interval))
                    injected = datetime.now(UTC)
                    for fault in FAULTS:
                        fleet.set_mode([port_of[fault, trial]], fault)
                    for fault in FAULTS:
                        found = lambda cid=comp[fault], t=injected: down_after(db, cid, t)  # noqa: E731
                        to_at, verdict = poll(found, TRIAL_DEADLINE_S, f"DOWN after {fault}")
                        out[fault]["at"].append(to_at)
                        out[fault]["verdict"].append(verdict)
                    fleet.set_mode([port_of[f, trial] for f in FAULTS], "recover")
                    c.log(f"trial {trial + 1}/{args.trials}: " + ", ".join(
                        f"{f} {out[f]['verdict'][-1] * 1000:.0f} ms" for f in FAULTS))
            finally:
                db.dispose()
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited early with {proc.returncode}")
    return out


def report(args: argparse.Namespace, out: dict[str, dict[str, list[float]]]) -> str:
    lines = [f"machine: {c.machine()}",
             f"interval {args.interval:g}s, timeout {args.timeout:g}s, failure_threshold 2, "
             f"retry interval {min(1.0, args.interval / 5) * 1000:.0f} ms, {args.trials} trials per fault",
             f"{'fault':<6} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}   (to state_transitions.at: median, p95)"]
    for fault in FAULTS:
        v, a = [x * 1000 for x in out[fault]["verdict"]], [x * 1000 for x in out[fault]["at"]]
        lines.append(f"{fault:<6} {c.percentile(v, 50):>10.0f} {c.percentile(v, 95):>8.0f} {max(v):>8.0f}"
                     f"   ({c.percentile(a, 50):.0f}, {c.percentile(a, 95):.0f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per fault kind")
    parser.add_argument("--interval", type=float, default=1.0, help="check interval, seconds")
    parser.add_argument("--timeout", type=float, default=0.5, help="check timeout, seconds")
    parser.add_argument("--seed", type=int, default=1, help="seed of the injection offsets")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (database, daemon log)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    c.exit_on_sigterm()
    out = measure(args)
    print(json.dumps(out) if args.json else report(args, out), flush=True)


if __name__ == "__main__":
    main()
