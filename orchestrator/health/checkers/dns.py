"""Name resolution inside a check's deadline.

``getaddrinfo`` blocks in C and cannot be cut by the watchdog (there is no socket yet), so a slow
resolver used to stall a check far past its timeout. Names are resolved on a small shared pool of
threads and waited for at most the time the check has left; an IP literal is never looked up.
A lookup that outlives its check keeps its resolver thread until the system resolver gives up, so
the pool is bounded: when all its threads hang, further lookups time out in their own deadlines.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

#: Resolver threads per process; lookups beyond this wait (inside their deadlines) for a free one.
RESOLVER_THREADS = 8

AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple]

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def is_ip_literal(host: str) -> bool:
    """True for ``127.0.0.1`` / ``::1`` style hosts, which need no lookup."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def resolve(host: str, port: int, timeout_s: float) -> list[AddrInfo]:
    """Stream-socket addresses of ``host:port`` within ``timeout_s``.

    Raises ``TimeoutError`` when the lookup takes longer and ``socket.gaierror`` when it fails.
    """
    if is_ip_literal(host):
        literal = host.strip("[]")
        family = socket.AF_INET6 if ":" in literal else socket.AF_INET
        address = (literal, port, 0, 0) if family == socket.AF_INET6 else (literal, port)
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
    if timeout_s <= 0:
        raise TimeoutError(f"no time left to resolve {host}")
    future = _resolver().submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout:
        future.cancel()  # still queued: never run it
        raise TimeoutError(f"resolving {host} took longer than {timeout_s:.3g}s") from None


def _resolver() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=RESOLVER_THREADS, thread_name_prefix="resolver")
        return _pool
