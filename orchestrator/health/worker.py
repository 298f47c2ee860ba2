"""A check worker process: runs its share of the checks and sends compact results back.

    python -m orchestrator.health.worker FD

Started by :mod:`orchestrator.health.procs` with one end of a socket pair as file descriptor FD. It
imports only the checkers (no database, no CLI), keeps its own kept-alive connections (the shared
checkers of this process), and runs the same fast and slow lanes as the main process. Messages:

- from the main process: ``("run", specs, items)`` (specs: ``[(component_id, spec dict)]`` sent
  once per definition; items: ``[(component_id, timeout_s, expected, slow)]``), ``("stop", timeout_s)``;
- to it: ``("ready",)`` once started, ``("results", [(component_id, ok, latency_ms, checked_at_ts, status_code, error, bytes_read,
  timed_out, lateness_ms, tls_expires_at_ts, warning)])`` every ``SEND_PERIOD_S``, and ``("bye",)`` after a stop.

SIGTERM and SIGINT are ignored: the main process drains its workers itself, and a worker whose main
process is gone sees the socket close and exits.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from multiprocessing.connection import Connection

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec
from orchestrator.health.dispatch import Due
from orchestrator.health.lanes import ThreadLanes

#: Results are batched for this long before one send: one message per period, not one per check.
SEND_PERIOD_S = 0.02


class _Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.specs: dict[int, CheckSpec] = {}
        self.out: list[tuple] = []
        self.out_lock = threading.Lock()
        self.lanes = ThreadLanes(self._collect)
        self.stopping = threading.Event()

    def _collect(self, due: Due, r: CheckResult, lateness_ms: float) -> None:
        item = (due.component_id, r.ok, r.latency_ms, r.checked_at.timestamp(), r.status_code, r.error,
                r.bytes_read, r.timed_out, lateness_ms,
                None if r.tls_expires_at is None else r.tls_expires_at.timestamp(), r.warning)
        with self.out_lock:
            self.out.append(item)

    def _flush(self) -> None:
        with self.out_lock:
            out, self.out = self.out, []
        if out:
            self.conn.send(("results", out))

    def _sender(self) -> None:
        while not self.stopping.wait(SEND_PERIOD_S):
            self._flush()

    def serve(self) -> int:
        sender = threading.Thread(target=self._sender, name="worker-sender", daemon=True)
        sender.start()
        self.conn.send(("ready",))  # imports done: the main process may route checks here
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return 0  # the main process is gone
            if message[0] == "run":
                self._run(message[1], message[2])
            elif message[0] == "stop":
                self.lanes.stop(float(message[1]))
                self.stopping.set()
                sender.join()
                self._flush()
                self.conn.send(("bye",))
                return 0

    def _run(self, specs: list[tuple[int, dict]], items: list[tuple[int, float, float, bool]]) -> None:
        for cid, spec in specs:
            self.specs[cid] = CheckSpec.model_validate(spec)
        batch = [Due(cid, self.specs[cid], timeout_s, expected, slow) for cid, timeout_s, expected, slow in items
                 if cid in self.specs]
        self.lanes.submit(batch)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[0]))
    conn = Connection(sock.detach())
    try:
        return _Worker(conn).serve()
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
