"""Degradation levels, measured: how fast a level is published, how it steps down, what evaluation costs.

    python bench/degradation.py --trials 10

1. Trigger → visible. The real daemon (``orchestrator run --http … --degradation-file …``) watches a
   critical loopback service (interval 200 ms, timeout 150 ms, failure_threshold 2) under a policy
   ``any_critical_down → emergency`` (confirm 2, evaluate_every 500 ms, hold 1 s). Per trial a
   long-poll (``?after=VERSION&wait=30s``) is waiting and a thread reads the state file every 2 ms;
   the service is crashed. Latency is from the moment the daemon knew the component was DOWN (the
   tripping check's start + its latency, from the database) to the long-poll's answer and to the
   file's change.
2. Recovery → NORMAL. The service is restored; from its UP transition to NORMAL in the file. The
   policy asks for EMERGENCY → MINIMAL → DEGRADED → NORMAL, one level per hold: 3 × 1 s.
3. Early warning lead time (bench/early_warning_lead.py when present): first ``degraded`` → ``down``
   on a service whose latency ramps past the timeout.
4. Evaluator CPU at 10,000 components: ``DegradationService.evaluate()`` over a live view of 10,000
   states on a real SQLite registry (three label scopes, the shipped rules plus a label_group rule),
   thread CPU per evaluation; baseline in the same process: copying the live view's states once (the
   read every evaluation starts with).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from orchestrator.db.engine import Database  # noqa: E402
from orchestrator.db.models import CheckResultRow, Component, StateTransition  # noqa: E402
from orchestrator.demo.service import free_port  # noqa: E402

HOLD_S = 1.0
DEADLINE_S = 30.0


class Service:
    """A loopback health endpoint that can crash (stop listening) and come back on the same port."""

    def __init__(self) -> None:
        self.port = 0
        self._httpd: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        class Ok(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Ok)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def crash(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def _wait(predicate, what: str, timeout_s: float = DEADLINE_S):
    return c.poll(predicate, timeout_s, what, 0.01)


class FileWatch:
    """Reads the state file every 2 ms; remembers when each level was first seen (wall time)."""

    def __init__(self, path: Path) -> None:
        self.path, self.seen, self._stop = path, [], threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            try:
                doc = json.loads(self.path.read_text())
                if doc["version"] != last:
                    last = doc["version"]
                    self.seen.append((time.time(), doc["level"], doc["version"]))
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.002)

    def first(self, level: str, after: float) -> float | None:
        return next((t for t, lv, _ in self.seen if lv == level and t >= after), None)

    def level(self) -> str | None:
        return self.seen[-1][1] if self.seen else None

    def stop(self) -> None:
        self._stop.set()


def _transition(db: Database, cid: int, to: str, after: datetime) -> float | None:
    """Wall time the daemon knew of ``cid``'s transition to ``to`` (after ``after``): check start + latency."""
    with db.read() as session:
        row = session.execute(select(StateTransition.at).where(
            StateTransition.component_id == cid, StateTransition.to_state == to, StateTransition.at > after)
            .order_by(StateTransition.at)).first()
        if row is None:
            return None
        latency = session.scalar(select(CheckResultRow.latency_ms).where(
            CheckResultRow.component_id == cid, CheckResultRow.checked_at == row.at)) or 0.0
    return row.at.timestamp() + latency / 1000


def measure_publication(trials: int, workdir: Path) -> dict[str, list[float]]:
    service = Service()
    home = workdir / "home"
    home.mkdir()
    plans = workdir / "plans.json"
    plans.write_text(json.dumps({"version": 1, "plans": {}, "degradation": {
        "evaluate_every": "500ms", "hold": f"{HOLD_S}s", "confirm": 2,
        "rules": [{"when": "any_critical_down", "level": "emergency"}]}}))
    db_url = f"sqlite:///{workdir / 'o.db'}"
    state_file = workdir / "degradation.json"
    port = free_port()
    env = {"ORCHESTRATOR_HOME": str(home)}
    cli = [sys.executable, "-m", "orchestrator", "--db", db_url, "--plans", str(plans)]
    subprocess.run([*cli, "component", "add", "core", "--url", f"http://127.0.0.1:{service.port}/",
                    "--interval", "200ms", "--timeout", "150ms", "--failure-threshold", "2",
                    "--criticality", "critical"], check=True, capture_output=True, env={**_env(), **env})
    daemon = subprocess.Popen([*cli, "run", "--http", f"127.0.0.1:{port}", "--degradation-file", str(state_file),
                               "--log-level", "warning"], env={**_env(), **env}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    db = Database(db_url)
    api = f"http://127.0.0.1:{port}/api/v1/degradation"
    out: dict[str, list[float]] = {"long_poll_ms": [], "file_ms": [], "to_normal_s": []}
    watch = None
    try:
        _wait(lambda: _get(api), "the API answers")
        watch = FileWatch(state_file)
        with db.read() as session:
            cid = session.scalar(select(Component.id).where(Component.name == "core"))
        for trial in range(trials):
            poll_ms, file_ms, to_normal_s = _trial(service, db, cid, api, watch)
            out["long_poll_ms"].append(poll_ms)
            out["file_ms"].append(file_ms)
            out["to_normal_s"].append(to_normal_s)
            c.log(f"trial {trial + 1}: long-poll {poll_ms:.0f} ms, file {file_ms:.0f} ms, "
                  f"back to normal {to_normal_s:.2f} s")
    finally:
        if watch is not None:
            watch.stop()
        daemon.terminate()
        daemon.wait(20)
        service.crash()
        db.dispose()
    return out


def _trial(service: Service, db: Database, cid: int, api: str, watch: FileWatch) -> tuple[float, float, float]:
    """One crash and restore: (long-poll ms, file ms) after DOWN was known, seconds from UP to NORMAL."""
    _wait(lambda: _state(db, cid) == "up" and (doc := _get(api)) and doc["level"] == "normal", "normal")
    version = _get(api)["version"]
    answered: list[float] = []
    poller = threading.Thread(target=lambda: answered.append(_long_poll(api, version)))
    poller.start()
    time.sleep(0.3)  # the long-poll is waiting in the server
    before = datetime.fromtimestamp(time.time() - 1).astimezone()
    service.crash()
    down_at = _wait(lambda: _transition(db, cid, "down", before), "DOWN recorded")
    poller.join(DEADLINE_S)
    file_at = _wait(lambda: watch.first("emergency", down_at - 1), "emergency in the file")
    restored = datetime.fromtimestamp(time.time() - 1).astimezone()
    service.start()
    up_at = _wait(lambda: _transition(db, cid, "up", restored), "UP recorded")
    normal_at = _wait(lambda: watch.first("normal", up_at), "normal in the file")
    return (answered[0] - down_at) * 1000, (file_at - down_at) * 1000, normal_at - up_at


def _env() -> dict[str, str]:
    return dict(os.environ)


def _get(url: str) -> dict | None:
    try:
        response = requests.get(url, timeout=2)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def _long_poll(url: str, version: int) -> float:
    requests.get(url, params={"after": version, "wait": "30s"}, timeout=40)
    return time.time()


def _state(db: Database, cid: int) -> str | None:
    with db.read() as session:
        return session.scalar(select(Component.state).where(Component.id == cid))


def measure_evaluator(n: int, evaluations: int, workdir: Path) -> dict[str, float]:
    from orchestrator.core.clock import SYSTEM_CLOCK
    from orchestrator.core.states import ComponentState as S
    from orchestrator.db.migrate import ensure_schema
    from orchestrator.degradation.policy import DegradationPolicy
    from orchestrator.degradation.service import DegradationService
    from orchestrator.degradation.signals import FleetSignals

    db = Database(f"sqlite:///{workdir / 'eval.db'}")
    ensure_schema(db)
    now = SYSTEM_CLOCK.now()
    teams = ("checkout", "search", "payments", "web", "batch")
    crits = ("critical", "high", "normal", "normal", "low")
    with db.write() as session:
        session.add_all([Component(name=f"c{i}", check_kind="http", url="http://127.0.0.1:1/", interval_s=10,
                                   timeout_s=2, criticality=crits[i % 5], labels={"team": teams[i % 5]},
                                   created_at=now, updated_at=now) for i in range(n)])
    with db.read() as session:
        ids = list(session.scalars(select(Component.id)))
    states = {cid: (S.DOWN if i % 50 == 0 else S.DEGRADED if i % 37 == 0 else S.UP) for i, cid in enumerate(ids)}

    class Live:
        def states(self):
            return dict(states)

        def counts(self):
            return Counter(states.values())

    signals = FleetSignals()
    for i in range(5000):
        signals.observe(i % 40 != 0, 20.0 + i % 7, 3.0)
    policy = DegradationPolicy.model_validate({
        "scopes": {"team=checkout": {}, "team=payments": {}, "team=search": {}},
        "rules": [{"when": "any_critical_down", "level": "minimal"},
                  {"when": "unhealthy_fraction", "at_least": 0.10, "level": "degraded"},
                  {"when": "unhealthy_fraction", "at_least": 0.25, "level": "minimal"},
                  {"when": "unhealthy_fraction", "at_least": 0.50, "level": "emergency"},
                  {"when": "label_group", "selector": "team=payments", "at_least": 0.2, "level": "minimal"},
                  {"when": "error_rate", "at_least": 0.2, "level": "degraded"},
                  {"when": "database_unreachable", "level": "emergency"}]})
    logging.getLogger("orchestrator.degradation").setLevel(logging.ERROR)  # its level changes are not the figure
    service = DegradationService(db, Live(), signals, policy=policy)
    service.evaluate()  # the first reads the index
    started = time.thread_time()
    for _ in range(evaluations):
        service.evaluate()
    per_eval = (time.thread_time() - started) / evaluations
    started = time.thread_time()
    for _ in range(evaluations):
        Live().states()
    baseline = (time.thread_time() - started) / evaluations
    db.dispose()
    return {"per_evaluation_ms": per_eval * 1000, "baseline_copy_ms": baseline * 1000,
            "cpu_share_at_2s": per_eval / 2.0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--components", type=int, default=10_000)
    parser.add_argument("--evaluations", type=int, default=50)
    parser.add_argument("--lead-trials", type=int, default=3)
    parser.add_argument("--skip-lead", action="store_true")
    args = parser.parse_args(argv)
    c.exit_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        pub = measure_publication(args.trials, workdir)
        ev = measure_evaluator(args.components, args.evaluations, workdir)
    lead = None
    if not args.skip_lead and (Path(__file__).parent / "early_warning_lead.py").exists():
        from early_warning_lead import measure_lead_time

        lead = measure_lead_time(args.lead_trials)
    p = c.percentile
    print(f"trigger (critical DOWN known) -> level visible, {args.trials} trials:")
    for key, name in (("long_poll_ms", "long-poll answer"), ("file_ms", "state file")):
        values = pub[key]
        print(f"  {name:17s} median {p(values, 50):6.0f} ms  p95 {p(values, 95):6.0f} ms  max {max(values):6.0f} ms")
    values = pub["to_normal_s"]
    print(f"recovery (UP known) -> NORMAL: median {p(values, 50):.2f} s  p95 {p(values, 95):.2f} s "
          f"(the holds: 3 x {HOLD_S:g} s = {3 * HOLD_S:g} s)")
    if lead is not None:
        print(f"early warning lead time (first degraded -> down), {len(lead)} trials: median {p(lead, 50):.1f} s, "
              f"min {min(lead):.1f} s, max {max(lead):.1f} s")
    print(f"evaluator at {args.components:,} components (3 scopes, 7 rules): {ev['per_evaluation_ms']:.1f} ms CPU "
          f"per evaluation = {ev['cpu_share_at_2s']:.2%} of a core at one evaluation per 2 s; "
          f"baseline (copying the live states once) {ev['baseline_copy_ms']:.2f} ms, ratio "
          f"{ev['per_evaluation_ms'] / ev['baseline_copy_ms']:.1f}x")


if __name__ == "__main__":
    main()
