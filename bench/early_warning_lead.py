"""Early-warning lead time: how long before DOWN a slowing service is reported ``degraded``.

    python bench/early_warning_lead.py --trials 3

Each trial, on a fresh SQLite database:

1. A loopback HTTP service answers after a delay that climbs linearly from 20 ms to 1.5 x the check
   timeout over --ramp seconds (a threaded ``http.server`` sleeping per request).
2. One component checks it (--interval, --timeout; failure_threshold 3, the early warning's
   defaults), with an hour's baseline seeded from rolled-up minutes at the service's 20 ms (as a daemon
   that has been running would have; --no-seed starts without one: floor only).
3. The real check plane (dispatcher, lanes, judge, trackers) and recorder run it; once the component
   is UP with a full window at 20 ms, the ramp starts.
4. The lead time is ``down.at - degraded.at`` of its state transitions; the seconds from the ramp's
   start to each are printed too, and the latency reason of the DEGRADED transition.

Figures go to stdout as ``name: value`` lines, progress to stderr; ``measure_lead_time(trials)`` is the
function behind them. A trial gives up after --ramp + 30 s (a missing DEGRADED or DOWN is a failure).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import _common as c  # noqa: E402

from orchestrator.components.definition import ComponentSpec  # noqa: E402
from orchestrator.components.registry import Registry  # noqa: E402
from orchestrator.db.engine import Database  # noqa: E402
from orchestrator.db.migrate import ensure_schema  # noqa: E402
from orchestrator.db.models import CheckRollup, Component, StateTransition  # noqa: E402
from orchestrator.health.plane import CheckPlane  # noqa: E402
from orchestrator.history.recorder import Recorder  # noqa: E402

START_MS = 20.0
#: a trial waits this long past the ramp for its DOWN before it fails
TRIAL_SLACK_S = 30.0
POLL_S = 0.05


class RampingService:
    """A loopback /health that answers after ``delay_ms()``: START_MS until ``ramp()``, then climbing
    linearly to ``end_ms`` over ``ramp_s`` (and staying there)."""

    def __init__(self, end_ms: float, ramp_s: float) -> None:
        self.end_ms, self.ramp_s = end_ms, ramp_s
        self.ramp_started: float | None = None
        self.hits = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                service.hits += 1
                time.sleep(service.delay_ms() / 1000)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except ConnectionError:  # the check timed out and hung up: that is the point
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/health"
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def delay_ms(self) -> float:
        if self.ramp_started is None:
            return START_MS
        done = min(1.0, (time.monotonic() - self.ramp_started) / self.ramp_s)
        return START_MS + done * (self.end_ms - START_MS)

    def ramp(self) -> None:
        self.ramp_started = time.monotonic()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass(frozen=True)
class Trial:
    lead_s: float  # DOWN.at - DEGRADED.at
    degraded_after_s: float  # from the ramp's start
    down_after_s: float
    reason: str  # of the DEGRADED transition


def _poll(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL_S)
    raise RuntimeError(f"{what}: not within {timeout_s:g}s")


def _seed(db: Database, cid: int, minutes: int = 60) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with db.write() as session:
        session.add_all(CheckRollup(component_id=cid, minute=now - timedelta(minutes=i), checks=60, failures=0,
                                    latency_p50_ms=START_MS + 1, latency_p95_ms=START_MS * 1.3,
                                    latency_max_ms=START_MS * 2) for i in range(1, minutes + 1))


def run_trial(workdir: Path, *, interval_s: float, timeout_s: float, ramp_s: float, seed: bool) -> Trial:
    """One ramp against the real check plane and recorder on a fresh SQLite database."""
    db = Database(f"sqlite:///{workdir / 'orchestrator.db'}")
    ensure_schema(db)
    service = RampingService(end_ms=1.5 * timeout_s * 1000, ramp_s=ramp_s)
    recorder = Recorder(db, flush_interval_s=0.2)
    plane = CheckPlane(db, recorder)
    try:
        Registry(db).add(ComponentSpec(name="api", url=service.url, interval=interval_s, timeout=timeout_s,
                                       failure_threshold=3, success_threshold=1))
        with db.read() as session:
            cid = session.scalar(select(Component.id).where(Component.name == "api"))
        if seed:
            _seed(db, cid)
        recorder.start()
        plane.start()
        plane.sync()  # the plane's dispatch thread checks from here on
        _poll(lambda: plane.live.state(cid).value == "up", 15, "UP")
        hits = service.hits
        _poll(lambda: service.hits >= hits + 12, 12 * interval_s + 15, "a window at 20 ms")
        ramp_at = datetime.now(UTC)
        service.ramp()
        _poll(lambda: plane.live.state(cid).value == "down", ramp_s + TRIAL_SLACK_S, "DOWN")
        recorder.flush_now()
        with db.read() as session:
            rows = session.scalars(select(StateTransition).where(StateTransition.component_id == cid)
                                   .order_by(StateTransition.id)).all()
            session.expunge_all()
    finally:
        plane.stop(2.0)
        recorder.stop(5.0)
        service.stop()
        db.dispose()
    degraded = next((r for r in rows if r.to_state == "degraded"), None)
    down = next(r for r in rows if r.to_state == "down")
    if degraded is None:
        raise RuntimeError(f"DOWN without DEGRADED first: {[(r.from_state, r.to_state) for r in rows]}")
    return Trial((down.at - degraded.at).total_seconds(), (degraded.at - ramp_at).total_seconds(),
                 (down.at - ramp_at).total_seconds(), degraded.reason)


def measure_lead_time(trials: int = 3, *, interval_s: float = 0.5, timeout_s: float = 0.4, ramp_s: float = 25.0,
                      seed: bool = True, details: list[Trial] | None = None) -> list[float]:
    """Lead time (s) from the first DEGRADED to DOWN, one per trial; ``details`` collects each Trial."""
    leads = []
    for n in range(1, trials + 1):
        with tempfile.TemporaryDirectory(prefix="ew-lead-") as workdir:
            trial = run_trial(Path(workdir), interval_s=interval_s, timeout_s=timeout_s, ramp_s=ramp_s, seed=seed)
        c.log(f"trial {n}: lead {trial.lead_s:.1f}s (degraded {trial.degraded_after_s:.1f}s, down "
              f"{trial.down_after_s:.1f}s after the ramp began): {trial.reason}")
        leads.append(trial.lead_s)
        if details is not None:
            details.append(trial)
    return leads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.5, help="check interval, s")
    parser.add_argument("--timeout", type=float, default=0.4, help="check timeout, s (< interval)")
    parser.add_argument("--ramp", type=float, default=25.0, help="seconds from 20 ms to 1.5 x the timeout")
    parser.add_argument("--no-seed", action="store_true", help="no baseline to start with (floor only)")
    args = parser.parse_args()
    c.exit_on_sigterm()
    details: list[Trial] = []
    leads = measure_lead_time(args.trials, interval_s=args.interval, timeout_s=args.timeout, ramp_s=args.ramp,
                              seed=not args.no_seed, details=details)
    print(f"trials: {len(leads)}")
    print(f"interval_s: {args.interval:g}")
    print(f"timeout_s: {args.timeout:g}")
    print(f"ramp_s: {args.ramp:g} (20 ms -> {1.5 * args.timeout * 1000:.0f} ms)")
    print(f"baseline_seeded: {not args.no_seed}")
    print(f"lead_s_median: {statistics.median(leads):.2f}")
    print(f"lead_s_min: {min(leads):.2f}")
    print(f"lead_s_each: {', '.join(f'{lead:.2f}' for lead in leads)}")
    print(f"degraded_after_ramp_s_median: {statistics.median(t.degraded_after_s for t in details):.2f}")
    print(f"down_after_ramp_s_median: {statistics.median(t.down_after_s for t in details):.2f}")
    print(f"first_reason: {details[0].reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
