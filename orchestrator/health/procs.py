"""Check worker processes: the dispatcher's lanes when one interpreter cannot hold the rate.

One Python process runs about one core of checks (the GIL); ``run --check-processes N`` shards the
checking over N worker processes (:mod:`orchestrator.health.worker`), each with its own requests
Session, while the main process alone judges, records and recovers. A component always goes to the
same worker (:func:`shard`: a mixing hash of its id, so ids in any arithmetic pattern — every 10th
component hanging, say — spread over the workers instead of landing on one), so each worker's
connection pool holds only its share of hosts.

1. ``submit`` sends each worker one message per tick: the definitions it has not seen yet and the
   due checks; every check in flight is remembered until its result comes back.
2. One reader thread waits on every worker's socket and hands results to the judge.
3. ``poll`` (every tick) notices a worker that died: it is started again, and its checks in flight
   are returned to the dispatcher, which runs them again at once. The reader thread sees a death
   first (its socket ends) and calls ``lost()``, the dispatcher's wake-up, so that tick comes at once. Until a worker says it is ready
   (a new interpreter takes a second or more to import the checkers), its share goes to the others.
4. ``stop`` asks every worker to finish its running checks, collects their last results, and waits.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait

from orchestrator.core.check_result import CheckResult
from orchestrator.health.dispatch import Due

log = logging.getLogger(__name__)

#: ``deliver(component_id, result, lateness_ms)``: where results go (the judge).
Deliver = Callable[[int, CheckResult, float], None]
#: Checks per second one worker process is planned for (a bare requests client does about 1,000
#: GETs/s on one core here; the rest is left for the main process and headroom).
CHECKS_PER_PROCESS = 400.0
#: Up to this many checks per second stay in the main process: a worker costs ~40 MB, and its IPC more
#: CPU than it saves while one interpreter has room (N=200 at 1 s: 12.6 CPU-s/min in-process, 15.1 with one).
IN_PROCESS_UP_TO = 300.0


def default_processes(checks_per_s: float, cores: int | None = None) -> int:
    """Worker processes for a fleet doing ``checks_per_s``: 0 (in-process) for small fleets, else
    enough for CHECKS_PER_PROCESS each, at most one per core."""
    cores = cores or os.cpu_count() or 1
    if checks_per_s <= IN_PROCESS_UP_TO or cores < 2:
        return 0
    return max(1, min(cores, round(checks_per_s / CHECKS_PER_PROCESS + 0.49)))


def shard(component_id: int, n: int) -> int:
    """The worker (of ``n``) that checks a component: stable, and spread by a multiplicative hash
    (Knuth's, 2^32 / golden ratio), not ``id % n``, which puts every k-th id on one worker."""
    return (((component_id * 2654435761) & 0xFFFFFFFF) * n) >> 32


class _Process:
    """One worker process, its socket, and what it was sent."""

    def __init__(self, index: int) -> None:
        self.index = index
        parent, child = socket.socketpair()
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestrator.health.worker", str(child.fileno())],
                                     pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
        child.close()
        self.conn = Connection(parent.detach())
        self.sent: dict[int, object] = {}  # component id -> the spec object it last got
        self.inflight: dict[int, Due] = {}
        self.lock = threading.Lock()
        self.alive = True
        self.ready = False

    def send(self, batch: list[Due]) -> None:
        specs = []
        items = []
        with self.lock:
            for due in batch:
                if self.sent.get(due.component_id) is not due.spec:
                    self.sent[due.component_id] = due.spec
                    specs.append((due.component_id, due.spec.model_dump()))
                items.append((due.component_id, due.timeout_s, due.expected, due.slow))
                self.inflight[due.component_id] = due
        try:
            self.conn.send(("run", specs, items))
        except OSError:
            self.alive = False  # poll() restarts it and re-dispatches what it held

    def finished(self, cids: list[int]) -> None:
        with self.lock:
            for cid in cids:
                self.inflight.pop(cid, None)

    def dead(self) -> bool:
        return not self.alive or self.proc.poll() is not None


class ProcessLanes:
    """N worker processes as the dispatcher's :class:`~.dispatch.Lanes`."""

    def __init__(self, count: int, deliver: Deliver, *, lost: Callable[[], None] = lambda: None) -> None:
        """``lost()`` is called (from the reader thread) when a worker's socket ends: poll() has work."""
        self.deliver = deliver
        self.lost = lost
        self._procs = [_Process(i) for i in range(count)]
        self._stopping = False
        self.restarts = 0
        self._reader = threading.Thread(target=self._read, name="worker-results", daemon=True)
        self._reader.start()

    @property
    def count(self) -> int:
        return len(self._procs)

    def grow(self, count: int) -> None:
        """Run ``count`` workers from now on (never fewer). Components are shared out again by the new
        count; a check in flight on its old worker still reports from there."""
        for i in range(len(self._procs), count):
            self._procs.append(_Process(i))

    def pids(self) -> list[int]:
        return [p.proc.pid for p in self._procs]

    def submit(self, batch: list[Due]) -> None:
        procs = list(self._procs)
        shares: list[list[Due]] = [[] for _ in procs]
        n = len(procs)
        ready = [i for i, p in enumerate(procs) if p.ready and p.alive] or list(range(n))
        for due in batch:
            i = shard(due.component_id, n)
            if not (procs[i].ready and procs[i].alive):
                i = ready[shard(due.component_id, len(ready))]  # its own worker is (re)starting
            shares[i].append(due)
        for proc, share in zip(procs, shares, strict=True):
            if share:
                proc.send(share)

    def poll(self) -> list[Due]:
        """Restart dead workers; returns the checks they held (never finished)."""
        lost: list[Due] = []
        if self._stopping:
            return lost
        for i, proc in enumerate(self._procs):
            if proc.dead():
                with proc.lock:
                    lost += proc.inflight.values()
                log.error("check worker %d (pid %d) died with exit code %s; restarting it, %d checks re-dispatched",
                          i, proc.proc.pid, proc.proc.poll(), len(proc.inflight))
                proc.conn.close()
                self._procs[i] = _Process(i)
                self.restarts += 1
        return lost

    def _read(self) -> None:
        while True:
            procs = {p.conn: p for p in self._procs if p.alive}
            if not procs:
                if self._stopping:
                    return
                time.sleep(0.05)
                continue
            try:
                ready = wait(list(procs), timeout=0.2)
            except OSError:
                continue  # a socket closed under us: the next round sees the new set
            for conn in ready:
                self._receive(procs[conn])  # type: ignore[index]
            if self._stopping and not any(p.alive for p in self._procs):
                return

    def _receive(self, proc: _Process) -> None:
        try:
            message = proc.conn.recv()
        except (EOFError, OSError):
            proc.alive = False
            if not self._stopping:
                self.lost()
            return
        if message[0] == "bye":
            proc.alive = False
            return
        if message[0] == "ready":
            proc.ready = True
            return
        items = message[1]
        proc.finished([item[0] for item in items])  # before judging: a death now loses none of them
        for cid, ok, latency_ms, at, status, error, nbytes, timed_out, lateness_ms, tls_at, warning in items:
            result = CheckResult(ok=ok, latency_ms=latency_ms, checked_at=datetime.fromtimestamp(at, UTC),
                                 status_code=status, error=error, bytes_read=nbytes, timed_out=timed_out,
                                 tls_expires_at=None if tls_at is None else datetime.fromtimestamp(tls_at, UTC),
                                 warning=warning)
            self.deliver(cid, result, lateness_ms)

    def stop(self, timeout_s: float) -> None:
        """Let every worker finish its running checks (bounded by ``timeout_s``) and exit."""
        self._stopping = True
        deadline = time.monotonic() + timeout_s
        for proc in self._procs:
            try:
                proc.conn.send(("stop", max(0.1, timeout_s - 1.0)))
            except OSError:
                proc.alive = False
        self._reader.join(max(0.0, deadline - time.monotonic()))
        for proc in self._procs:
            try:
                proc.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.proc.kill()
                proc.proc.wait()
            proc.conn.close()
