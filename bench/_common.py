"""What the benchmark scripts share: the fleet, the daemon subprocess, /proc readings, percentiles.

Every process started here is its own process group and is stopped (TERM, then KILL) on exit.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

BENCH_DIR = Path(__file__).resolve().parent
FLEET_SCRIPT = BENCH_DIR / "fleet.py"
#: endpoints served per fleet process: each needs a listening socket plus one per client
#: connection, and the open-files hard limit here is 20,000 per process
FLEET_SHARD_SIZE = 5000
#: the first port of fleet shard i is FLEET_BASE_PORT + i * FLEET_PORT_STRIDE (below the
#: kernel's ephemeral range, so client connections never take a port a shard wants)
FLEET_BASE_PORT = 10000
FLEET_PORT_STRIDE = 6000
CLK_TCK = os.sysconf("SC_CLK_TCK")


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the ``finally`` blocks stop every process the bench started."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def log(msg: str) -> None:
    """Progress on stderr; the figures go to stdout."""
    print(f"# {msg}", file=sys.stderr, flush=True)


def poll(predicate, timeout_s: float, what: str, interval_s: float = 0.02):
    """The first truthy value of ``predicate`` within ``timeout_s``; RuntimeError otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout_s}s")
        time.sleep(interval_s)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (q in 0..100); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# -- processes ------------------------------------------------------------------------------------
def start(args: list[str], **kwargs: object) -> subprocess.Popen:
    """Start ``args`` (never through a shell) in a new process group."""
    return subprocess.Popen(args, start_new_session=True, **kwargs)  # type: ignore[call-overload]


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace_s``; reap the leader."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything the leader left behind in its group
    except ProcessLookupError:
        pass
    proc.wait(grace_s)


def read_line(proc: subprocess.Popen, timeout_s: float) -> str:
    """One stdout line of ``proc`` within ``timeout_s`` (RuntimeError otherwise)."""
    assert proc.stdout is not None
    buf = b""
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not buf.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise RuntimeError(f"no line within {timeout_s}s from {proc.args}")
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"{proc.args} exited with {proc.wait()}")
            buf += chunk
    return buf.decode()


@contextmanager
def workdir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary directory for the database and logs: removed after a clean run unless ``keep``,
    kept (and named) after a failure."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    except BaseException:
        log(f"kept {path} (daemon.log, bench.db)")
        raise
    if keep:
        log(f"kept {path} (daemon.log, bench.db)")
    else:
        shutil.rmtree(path, ignore_errors=True)


# -- /proc ----------------------------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def status_kb(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` figure in kB, e.g. ``VmHWM`` (peak RSS)."""
    return _kb_field(f"/proc/{pid}/status", key)


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (the daemon's check worker processes)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def children_kb(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` figure summed over the live direct children of ``pid``."""
    total = 0
    for child in children(pid):
        try:
            total += status_kb(child, key)
        except (OSError, KeyError):
            pass  # exited meanwhile
    return total


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children (a worker restarted mid-window loses its share)."""
    total = cpu_s(pid)
    for child in children(pid):
        try:
            total += cpu_s(child)
        except OSError:
            pass
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / CLK_TCK, sum(ticks) / CLK_TCK


def machine() -> str:
    """One line: CPU model, cores, memory, Python."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = _kb_field("/proc/meminfo", "MemTotal")
    return (f"{model}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.0f} GiB, "
            f"Python {sys.version.split()[0]}")  # fmt: skip


def _kb_field(path: str, key: str) -> int:
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


# -- the fleet ------------------------------------------------------------------------------------
@dataclass
class Fleet:
    """Running fleet shards: their processes, control URLs and every endpoint port."""

    procs: list[subprocess.Popen]
    controls: list[str]
    ports: list[int]
    shard_of: dict[int, int]

    def cpu_s(self) -> float:
        return sum(cpu_s(p.pid) for p in self.procs)

    def set_mode(self, ports: list[int], mode: str) -> None:
        """Switch ``ports`` to ``mode`` (ok, 500, hang, crash, recover), shard by shard."""
        by_shard: dict[int, list[int]] = {}
        for port in ports:
            by_shard.setdefault(self.shard_of[port], []).append(port)
        for shard, group in by_shard.items():
            for i in range(0, len(group), 500):  # keep the request line short
                ports_arg = ",".join(map(str, group[i:i + 500]))
                resp = requests.get(f"{self.controls[shard]}/mode", params={"port": ports_arg, "mode": mode},
                                    timeout=10)
                resp.raise_for_status()

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/health"


@contextmanager
def fleet(count: int, ready_timeout_s: float = 60.0) -> Iterator[Fleet]:
    """``count`` loopback endpoints served by ceil(count / FLEET_SHARD_SIZE) fleet processes."""
    procs: list[subprocess.Popen] = []
    try:
        sizes = [min(FLEET_SHARD_SIZE, count - i) for i in range(0, count, FLEET_SHARD_SIZE)]
        for i, size in enumerate(sizes):
            procs.append(start([sys.executable, str(FLEET_SCRIPT), "--count", str(size), "--base-port",
                                str(FLEET_BASE_PORT + i * FLEET_PORT_STRIDE)], stdout=subprocess.PIPE))
        controls, ports, shard_of = [], [], {}
        for i, proc in enumerate(procs):
            ready = json.loads(read_line(proc, ready_timeout_s))
            controls.append(f"http://127.0.0.1:{ready['control_port']}")
            ports += ready["ports"]
            shard_of.update(dict.fromkeys(ready["ports"], i))
        yield Fleet(procs, controls, ports, shard_of)
    finally:
        for proc in procs:
            stop(proc)


# -- the daemon -----------------------------------------------------------------------------------
def orchestrator_cmd(db_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator", "--db", db_url, *args]


def bench_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_HOME"] = str(home)
    return env


def apply_components(db_url: str, components: list[dict], workdir: Path, timeout_s: float = 300.0,
                     prune: bool = False) -> None:
    """Register ``components`` with ``orchestrator apply -f`` (the same path an operator uses); with
    ``prune`` remove the registered ones not listed."""
    path = workdir / "components.json"
    path.write_text(json.dumps({"components": components}))
    args = ["apply", "-f", str(path)] + (["--prune"] if prune else [])
    proc = start(orchestrator_cmd(db_url, *args), cwd=workdir, env=bench_env(workdir),
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=timeout_s)
    finally:
        stop(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"apply failed ({proc.returncode}): {err.decode()[-2000:]}")


@contextmanager
def daemon(db_url: str, workdir: Path, run_for_s: float, *extra: str,
           start_timeout_s: float = 120.0) -> Iterator[subprocess.Popen]:
    """``orchestrator run --for run_for_s`` as a subprocess; yields once it logged "started".

    Its log goes to ``workdir/daemon.log`` (a pipe nobody reads would fill up and block it).
    """
    log_path = workdir / "daemon.log"
    with open(log_path, "wb") as log_file:
        proc = start(orchestrator_cmd(db_url, "run", "--for", f"{run_for_s:g}s", *extra), cwd=workdir,
                     env=bench_env(workdir), stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        deadline = time.monotonic() + start_timeout_s
        while b" started instance=" not in log_path.read_bytes():
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"daemon not started within {start_timeout_s}s")
            time.sleep(0.05)
        yield proc
    finally:
        stop(proc, grace_s=30.0)


def wait_exit(proc: subprocess.Popen, timeout_s: float) -> int:
    """Wait for a process that stops by itself; RuntimeError past ``timeout_s``."""
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{proc.args} still running after {timeout_s}s") from None
