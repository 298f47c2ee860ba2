"""Waitress, guarded against slow clients: a deadline per request, a cap per client address, and a lane
of its own for the health probes.

Waitress reads every connection on one loop thread and hands a request to the thread pool only once it
has arrived whole, so a slow client holds no request thread, but it holds a connection, and waitress
stops accepting at ``connection_limit``: 150-200 connections trickling partial headers (slowloris) kept
every new client, the liveness probe included, out for as long as they liked. Here:

1. A request must arrive whole (headers and body) within ``REQUEST_TIMEOUT_S`` of its first byte, however
   slowly it trickles; a connection with nothing to do is closed after ``IDLE_TIMEOUT_S``. Checked every
   ``CLEANUP_INTERVAL_S`` on the loop thread.
2. One client address holds at most ``MAX_CONNECTIONS_PER_ADDRESS``: a further connection from it closes
   that address's oldest connection that is not being answered (a trickle or an idle keep-alive), or is
   itself closed when all are busy. One address cannot fill the server; a new request still gets in.
3. ``/healthz`` and ``/readyz`` are answered by ``PROBE_THREADS`` threads of their own, never queued
   behind the request pool (long-polls, a slow page).

Guarantee kept (docs/web.md, "Slow clients"): a probe that can reach the port is answered while the
daemon is alive; nothing here touches the checks, which run on threads of their own (invariant 5).
"""

from __future__ import annotations

import time

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

#: a request (headers and body) must arrive within this long of its first byte; our requests are a few
#: hundred bytes, so only a client that trickles on purpose (or a dead link) takes longer
REQUEST_TIMEOUT_S = 10.0
#: a kept-alive connection with no request in progress is closed after this long (waitress's channel_timeout)
IDLE_TIMEOUT_S = 30
#: how often the deadlines are checked (waitress's cleanup_interval, whole seconds)
CLEANUP_INTERVAL_S = 1
#: open connections from one client address (a browser opens ~6; a proxy without --trusted-proxies is one
#: address for all its clients, so this leaves room for them)
MAX_CONNECTIONS_PER_ADDRESS = 64
#: open connections in all (each is a file descriptor; the daemon's own checks need some too)
CONNECTION_LIMIT = 512
#: the threads that answer /healthz and /readyz (both are a few reads of memory and one SELECT 1)
PROBE_THREADS = 2
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


class GuardedChannel(HTTPChannel):
    """A waitress channel that remembers when its current request started to arrive."""

    #: time.monotonic() of the first byte of the request still arriving (None: none in progress)
    pending_since: float | None = None

    def received(self, data: bytes) -> bool:
        if data and self.request is None and self.pending_since is None:
            self.pending_since = time.monotonic()
        result = super().received(data)
        if self.request is None:
            self.pending_since = None
        return result


class GuardedServer(TcpWSGIServer):
    """Waitress's TCP server with the request deadline, the per-address cap and the probe lane."""

    channel_class = GuardedChannel

    def __init__(self, application, *, probe_dispatcher: ThreadedTaskDispatcher, **kwargs) -> None:
        self.probe_dispatcher = probe_dispatcher
        super().__init__(application, **kwargs)

    def add_task(self, task: HTTPChannel) -> None:
        request = task.requests[0] if task.requests else None
        if request is not None and getattr(request, "path", None) in PROBE_PATHS and request.command in (
                "GET", "HEAD"):
            self.probe_dispatcher.add_task(task)
        else:
            self.task_dispatcher.add_task(task)

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # waitress's idle timeout, on its own wall clock
        cutoff = time.monotonic() - REQUEST_TIMEOUT_S  # ours on the monotonic clock (invariant 7)
        for channel in list(self.active_channels.values()):
            pending = getattr(channel, "pending_since", None)
            if pending is not None and pending < cutoff and not channel.requests:
                channel.will_close = True

    def handle_accept(self) -> None:
        before = set(self.active_channels)
        super().handle_accept()
        for fd in set(self.active_channels) - before:
            self._cap_address(self.active_channels[fd])

    def _cap_address(self, new: HTTPChannel) -> None:
        """Keep one address under its cap: close its oldest connection not being answered, else ``new``."""
        address = new.addr[0] if isinstance(new.addr, tuple) else new.addr
        same = [c for c in self.active_channels.values() if c is not new and not c.will_close
                and (c.addr[0] if isinstance(c.addr, tuple) else c.addr) == address]
        if len(same) < MAX_CONNECTIONS_PER_ADDRESS:
            return
        idle = [c for c in same if not c.requests]
        victim = min(idle, key=lambda c: c.creation_time) if idle else new
        victim.will_close = True
        if victim is new:
            new.handle_close()


def create(application, *, host: str, port: int, threads: int, **kwargs) -> GuardedServer:
    """A :class:`GuardedServer` listening on ``host:port`` (waitress's adjustments in ``kwargs``)."""
    probes = ThreadedTaskDispatcher()
    probes.set_thread_count(PROBE_THREADS)
    return GuardedServer(application, probe_dispatcher=probes, host=host, port=port, threads=threads,
                         channel_timeout=IDLE_TIMEOUT_S, cleanup_interval=CLEANUP_INTERVAL_S,
                         connection_limit=CONNECTION_LIMIT, **kwargs)
