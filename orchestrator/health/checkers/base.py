"""The checker contract: one shape for every kind of health check.

A checker turns a :class:`CheckSpec` into a :class:`CheckResult`. A failure of the component (or of
the checker itself) is a result with a one-line ``error``, never an exception, so one bad
component can never break the scheduler's loop.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from typing import ClassVar

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import UnresolvedReference
from orchestrator.core.redaction import redact
from orchestrator.core.secret_refs import resolve_model

log = logging.getLogger(__name__)

#: Longest ``error`` text kept: it is a one-line reason for tables and logs, not a dump.
MAX_ERROR_CHARS = 200
#: How late the watchdog may cut a check's sockets. Nearly every check ends before its deadline, yet
#: an exact timer wakes the watchdog thread once per check to find that out; with this slack one
#: wake-up retires every deadline that falls due within it. Per-read socket timeouts still end a
#: plain hang on time: the watchdog is the backstop for trickling servers.
WATCHDOG_SLACK_S = 0.05


class Checker(ABC):
    """Base of the http, tcp and command checkers.

    - ``kind``: the ``CheckSpec.kind`` this checker serves.
    - ``check(spec, timeout_s=..., clock=...)``: called by the check lanes from any thread,
      concurrently; returns within about ``timeout_s``; never raises. ``clock`` (default: the
      checker's own) stamps ``checked_at`` and measures the deadline and latency.
    - ``close()``: called once at shutdown to release pooled resources; a no-op by default.
    """

    kind: ClassVar[str]

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock

    def check(self, spec: CheckSpec, *, timeout_s: float, clock: Clock | None = None) -> CheckResult:
        """Run one check of ``spec`` within ``timeout_s`` seconds; every failure is a result."""
        attempt = Attempt(clock or self.clock, timeout_s)
        try:
            spec = resolve_model(spec)  # ${env:…}/${file:…} in url, headers, command: in memory only
        except UnresolvedReference as exc:
            return attempt.fail(str(exc))
        try:
            return self._check(spec, attempt)
        except Exception as exc:  # a checker bug must not take the scheduler down with it
            log.exception("checker failed kind=%s url=%s", self.kind, spec.url)
            return attempt.fail(f"checker error: {type(exc).__name__}: {exc}")

    @abstractmethod
    def _check(self, spec: CheckSpec, attempt: Attempt) -> CheckResult:
        """Do the check; may raise, :meth:`check` turns any exception into a failed result."""

    def close(self) -> None:  # noqa: B027 - an optional hook: most checkers pool nothing
        """Release pooled resources (connections); the checker is not used afterwards."""


class Attempt:
    """The clock readings and deadline of one check, and the builders of its result.

    Everything is read from the one injected clock (core/clock.py): ``checked_at`` from ``now()``,
    the deadline and the latency from ``monotonic()``.
    """

    def __init__(self, clock: Clock, timeout_s: float) -> None:
        self.clock = clock
        self.checked_at = clock.now()
        self.timeout_s = timeout_s
        self.started = clock.monotonic()
        self.deadline = self.started + timeout_s

    def remaining_s(self) -> float:
        """Seconds left before the deadline (0 when it has passed)."""
        return max(0.0, self.deadline - self.clock.monotonic())

    def elapsed_ms(self) -> float:
        """Milliseconds since the check started."""
        return (self.clock.monotonic() - self.started) * 1000.0

    def timeout_error(self) -> str:
        """The one reason used for every kind of deadline overrun: ``timeout after 2s``."""
        return f"timeout after {self.timeout_s:g}s"

    def fail(self, error: str, **fields: object) -> CheckResult:
        """A failed result with ``error`` squeezed to one short line and redacted: it is stored, logged
        and shown (a URL with its password, a token an endpoint echoes)."""
        return self._result(False, one_line(redact(error)), fields)

    def succeed(self, **fields: object) -> CheckResult:
        """A healthy result."""
        return self._result(True, None, fields)

    def _result(self, ok: bool, error: str | None, fields: dict[str, object]) -> CheckResult:
        timed_out = error is not None and error == self.timeout_error()
        return CheckResult(
            ok=ok, latency_ms=self.elapsed_ms(), checked_at=self.checked_at, error=error, timed_out=timed_out,
            **fields,
        )


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """First non-empty line of ``text``, whitespace collapsed, cut to ``limit`` characters."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Deadline:
    """One check's deadline and the sockets to cut if it passes while the check still runs."""

    __slots__ = ("at", "fired", "_done", "_socks")

    def __init__(self, at: float) -> None:
        self.at = at  # on the system's monotonic clock: it bounds real blocking calls
        #: True once the deadline passed and the sockets were shut down: the check timed out.
        self.fired = False
        self._done = False
        self._socks: list[tuple[socket.socket, bool]] = []  # (socket, whether it is our duplicate)

    def remaining_s(self) -> float:
        """Real seconds left before the sockets are cut (0 when past)."""
        return max(0.0, self.at - time.monotonic())


class Watchdog:
    """Shuts down the sockets of checks that outlive their deadline, from one background thread.

    Socket timeouts bound each read, not their sum: a server trickling one byte every half
    second never trips them. Shutting the socket down from another thread makes the blocked
    read return at once, whatever phase (TLS handshake, headers, body) it is in.
    """

    def __init__(self) -> None:
        # A plain lock, not a Condition: three acquisitions per check from every check thread, and
        # Condition's Python-level __enter__/__exit__ cost a quarter of a worker's CPU at 500 checks/s.
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set only when a new deadline is the earliest
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._local = threading.local()

    def arm(self, timeout_s: float) -> Deadline:
        """Start watching a check of the calling thread that must end within ``timeout_s``.

        Relative, and kept on the system's monotonic clock: a fake clock cannot make a blocked read
        return sooner, so the cut is timed by the kernel's clock whatever clock the check reads.
        """
        at = time.monotonic() + timeout_s
        deadline = Deadline(at)
        with self._lock:
            heapq.heappush(self._heap, (at, next(self._seq), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="check-watchdog", daemon=True)
                self._thread.start()
            earliest = self._heap[0][2] is deadline
        if earliest:  # wake the thread only if it must fire sooner
            self._wake.set()
        self._local.deadline = deadline
        return deadline

    def current(self) -> Deadline | None:
        """The deadline armed by the calling thread, if any."""
        return getattr(self._local, "deadline", None)

    def watch(self, sock: socket.socket, *, own: bool = True) -> Deadline | None:
        """Cut ``sock`` if the calling thread's armed deadline passes; returns that deadline
        (None, and nothing watched, when the thread has none armed).

        With ``own`` (a socket that may yet be closed or detached while watched: a new one that a
        TLS wrap will take over) a duplicate descriptor of our own is watched, valid until disarm()
        whatever becomes of the original and its number. Without it the socket object itself is
        watched: a closed or detached object refuses shutdown() (EBADF) and never touches a reused
        descriptor; that is the hot path, a kept-alive connection, with no system call.
        """
        deadline = self.current()
        if deadline is None:
            return None
        if own:
            # Family and type given, so the socket object need not ask the kernel for them.
            watched = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
        else:
            watched = sock
        with self._lock:
            if not deadline._done:
                deadline._socks.append((watched, own))
                if deadline.fired:
                    _shutdown(watched)
                return deadline
        if own:
            watched.close()
        return deadline

    def disarm(self, deadline: Deadline) -> bool:
        """Stop watching; returns whether the deadline had fired."""
        self._local.deadline = None
        with self._lock:
            deadline._done = True
            socks, deadline._socks = deadline._socks, []
        for sock, own in socks:
            if own:
                sock.close()
        return deadline.fired

    def _run(self) -> None:
        heap = self._heap
        while True:
            with self._lock:
                head = heap[0][0] if heap else None
            now = time.monotonic()
            if head is None or head > now:
                self._wake.wait(None if head is None else head - now + WATCHDOG_SLACK_S)
                self._wake.clear()  # a later arm() sets it again; the head is read anew above
                now = time.monotonic()
            with self._lock:
                while heap and heap[0][0] <= now:
                    deadline = heapq.heappop(heap)[2]
                    if not deadline._done:
                        deadline.fired = True
                        for sock, _own in deadline._socks:
                            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer


#: The process-wide watchdog shared by every checker: one thread however many checks run.
WATCHDOG = Watchdog()
