"""Shared pieces of the recovery benchmarks: a breakable fleet, a real restart script, the daemon.

- :class:`Fleet` starts ``bench/fleet.py`` (N loopback HTTP endpoints in one process, its own
  process group) and breaks ports through its control API: ``crash`` (stop listening, cut
  connections), ``500`` (answer 500) or ``hang`` (read requests, never answer).
- :func:`write_restart_script` writes the executable a recovery plan (or Monit) runs with the
  component name: it appends ``{"t", "name"}`` to an action log, then tells the fleet to ``recover``
  that port (listen again, answer 200). A restart that does not happen leaves the port broken, so
  every verified recovery in these benchmarks was caused by a real action.
- :class:`Daemon` runs ``orchestrator run`` as a subprocess in its own process group and reads its
  CPU time from ``/proc``.

Every process started here is stopped (SIGTERM, then SIGKILL of its whole group) by ``stop()``;
the benchmarks call it in ``finally``.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import read_line, stop

BENCH = Path(__file__).resolve().parent
FLEET_PY = BENCH / "fleet.py"
REPO = BENCH.parent
#: Seconds a started process gets to print its ready line.
READY_TIMEOUT_S = 30.0
#: Seconds between SIGTERM and SIGKILL of a process group.
KILL_GRACE_S = 10.0
FAULTS = ("crash", "500", "hang")


def stop_group(proc: subprocess.Popen, grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM the process group of ``proc``, wait ``grace_s``, then SIGKILL it; always reaps."""
    stop(proc, grace_s)


def http_get(port: int, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Fleet:
    """bench/fleet.py as a subprocess: ``ports`` serve 200 until broken."""

    def __init__(self, count: int) -> None:
        self.proc = subprocess.Popen([sys.executable, str(FLEET_PY), "--count", str(count), "--base-port", "0"],
                                     stdout=subprocess.PIPE, start_new_session=True)
        try:
            ready = json.loads(read_line(self.proc, READY_TIMEOUT_S))
        except BaseException:
            stop_group(self.proc, 2)
            raise
        self.control_port: int = ready["control_port"]
        self.ports: list[int] = ready["ports"]

    def set_mode(self, ports: list[int], mode: str) -> float:
        """Switch ``ports`` to ``mode``; returns the wall-clock time the change took effect."""
        status, body = http_get(self.control_port, f"/mode?port={','.join(map(str, ports))}&mode={mode}")
        if status != 200:
            raise RuntimeError(f"fleet control refused {mode}: {body[:200]!r}")
        return time.time()

    def modes(self) -> dict[int, str]:
        _, body = http_get(self.control_port, "/status")
        return {int(p): m for p, m in json.loads(body)["modes"].items()}

    def stop(self) -> None:
        stop_group(self.proc, 5)


_RESTART_SCRIPT = '''#!{python} -I
"""Restart one bench service: log the action, then have the fleet listen/answer again on its port."""
import http.client, json, sys, time

started = time.time()
name = sys.argv[1]
port = json.load(open({ports_file!r}))[name]
with open({log_file!r}, "a") as log:
    log.write(json.dumps({{"t": started, "name": name}}) + "\\n")
conn = http.client.HTTPConnection("127.0.0.1", {control_port}, timeout=5)
conn.request("GET", "/mode?port=%d&mode=recover" % port)
status = conn.getresponse().status
print("restarted %s (port %d): control answered %d" % (name, port, status))
sys.exit(0 if status == 200 else 1)
'''


def write_restart_script(folder: Path, fleet: Fleet, ports_by_name: dict[str, int]) -> tuple[Path, Path]:
    """Write ``restart`` (mode 0755) and its name→port map into ``folder``; (script, action log)."""
    ports_file, log_file, script = folder / "ports.json", folder / "actions.jsonl", folder / "restart"
    ports_file.write_text(json.dumps(ports_by_name))
    log_file.touch()
    script.write_text(_RESTART_SCRIPT.format(python=sys.executable, ports_file=str(ports_file),
                                             log_file=str(log_file), control_port=fleet.control_port))
    script.chmod(0o755)
    return script, log_file


def read_actions(log_file: Path) -> list[dict]:
    """Every action the restart script logged, oldest first."""
    return [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]


def plan_file(folder: Path, *, max_concurrent: int | None, settle: str | None = None) -> Path:
    """A plan file with the shipped ``process`` plan (restart via the script, verify every 500 ms x2);
    ``max_concurrent`` None leaves ``limits.max_concurrent_recoveries`` to its fleet-scaled default."""
    limits: dict[str, object] = {"max_unhealthy_fraction": 0.5, "min_components": 4}
    if max_concurrent is not None:
        limits["max_concurrent_recoveries"] = max_concurrent
    if settle is not None:
        limits["settle"] = settle
    plans = {
        "version": 1,
        "limits": limits,
        "plans": {"process": {
            "description": "Restart via the bench's restart script, verify, retry once.",
            "budget": {"max_actions": 5, "window": "1h"},
            "steps": [{"name": "restart", "strategy": "restart", "attempts": 2, "timeout": "30s",
                       "params": {"command": ["{vars.restart_script}", "{component.name}"]},
                       "backoff": {"base": "1s", "cap": "10s"},
                       "verify": {"interval": "500ms", "successes": 2, "deadline": "20s"}}],
        }},
    }
    path = folder / "plans.json"
    path.write_text(json.dumps(plans, indent=1))
    return path


def components_file(folder: Path, ports_by_name: dict[str, int], script: Path, *, interval: str = "1s",
                    timeout: str = "500ms", failure_threshold: int = 2) -> Path:
    """The ``orchestrator apply -f`` file registering every service with the ``process`` plan."""
    components = [{"name": name, "url": f"http://127.0.0.1:{port}/health", "interval": interval,
                   "timeout": timeout, "failure_threshold": failure_threshold, "plan": "process",
                   "vars": {"restart_script": str(script)}} for name, port in ports_by_name.items()]
    path = folder / "components.json"
    path.write_text(json.dumps({"components": components}))
    return path


class Daemon:
    """``orchestrator run`` on a SQLite file in ``folder``, in its own process group."""

    def __init__(self, folder: Path, plans: Path, components: Path, run_for_s: float, *extra: str,
                 env: dict[str, str] | None = None) -> None:
        """``extra``: more ``run`` arguments (``--http ADDR``); ``env``: more environment (an API token)."""
        self.folder = folder
        self.db_url = f"sqlite:///{folder / 'orchestrator.sqlite'}"
        self.env = {**os.environ, "ORCHESTRATOR_HOME": str(folder), **(env or {})}
        self.base = [sys.executable, "-m", "orchestrator", "--db", self.db_url, "--plans", str(plans)]
        # apply migrates the empty database first, then registers every component in one transaction
        subprocess.run(self.base + ["apply", "-f", str(components)], env=self.env, check=True, capture_output=True,
                       timeout=120, cwd=REPO)
        self.log = open(folder / "daemon.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.base + ["run", "--for", f"{run_for_s:g}s", "--log-level", "info", *extra],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=REPO)

    def cpu_s(self) -> float:
        """User + system CPU seconds the daemon has used so far (0 once it is gone)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int | None:
        """SIGTERM (the daemon finishes in-flight work), SIGKILL after the grace; its exit status."""
        stop_group(self.proc)
        self.log.close()
        return self.proc.returncode


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Episode:
    """One broken service: when it broke and how."""

    name: str
    port: int
    fault: str
    broken_at: float
