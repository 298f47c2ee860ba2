"""HTTP checker: one request (plus capped redirects) judged on status, body, JSON and latency.

Plain checks (GET and HEAD of an http(s) URL without credentials in it: nearly all of them) go
through the lean client of ``wire.py``: kept-alive sockets per origin, a request written in one
piece, the answer parsed by a strict small parser, about a tenth of requests' CPU (``bench/clients.py``).
The rest (POST, PUT, OPTIONS, credentials or non-ASCII in the URL) go through requests
(``http_requests.py``, imported on first use). Both are judged by ``verdict.py``, so a check reads
the same whichever client made it.

Bounded as invariant 5 asks, either way: ``timeout_s`` is a hard total over the lookup, connect,
TLS, headers and body, and at most ``MAX_BODY_BYTES`` of body are read; a longer body closes the
connection instead of downloading the rest. Proxies and .netrc from the environment are never used:
a health check talks to the component itself.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from orchestrator import __version__
from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import MAX_BODY_BYTES, CheckSpec
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.health.checkers.base import Attempt, Checker
from orchestrator.health.checkers.tls import client_context
from orchestrator.health.checkers.verdict import failed_exchange, judge, reason
from orchestrator.health.checkers.wire import ACCEPT_ENCODING, BodyFailed, Target, WireClient, parse_target

if TYPE_CHECKING:
    from orchestrator.health.checkers.http_requests import RequestsExchange

USER_AGENT = f"orchestrator-healthcheck/{__version__}"
#: Hosts whose connections are kept: one pool per host, so this is "every host we check". Checks
#: visit hosts round-robin, so a pool smaller than the fleet misses on every check (a new TCP
#: connection each time, about twice the CPU): by default it holds as many hosts as 3/4 of the
#: open-files limit allows (one kept-alive socket each), never fewer than this.
MIN_POOL_CONNECTIONS = 1024
#: Idle keep-alive connections kept per host; extra concurrent checks of one host still run.
DEFAULT_POOL_MAXSIZE = 4
#: Methods the lean client sends: safe to send again on a new connection when a kept-alive one
#: turns out closed.
LEAN_METHODS = frozenset({"GET", "HEAD"})
#: Statuses that redirect when they come with a Location (requests' REDIRECT_STATI).
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: The headers requests sends by default, in its order; a spec's headers replace them by name.
DEFAULT_HEADERS = {"user-agent": ("User-Agent", USER_AGENT), "accept-encoding": ("Accept-Encoding", ACCEPT_ENCODING),
                   "accept": ("Accept", "*/*"), "connection": ("Connection", "keep-alive")}
_DEFAULT_TAIL = "".join(f"{name}: {value}\r\n" for name, value in DEFAULT_HEADERS.values()) + "\r\n"
_BAD_HEADER_CHARS = ("\r", "\n", "\0")


class HttpChecker(Checker):
    """Checks http(s) URLs through connection pools shared by every thread, holding every host."""

    kind = "http"

    def __init__(
        self,
        *,
        pool_connections: int | None = None,
        pool_maxsize: int = DEFAULT_POOL_MAXSIZE,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(clock=clock)
        self._pool_connections = pool_connections or default_pool_connections()
        self._pool_maxsize = pool_maxsize
        self._wire = WireClient(client_context, max_origins=self._pool_connections, per_origin=pool_maxsize)
        self._requests: RequestsExchange | None = None
        self._requests_lock = threading.Lock()

    def close(self) -> None:
        """Close every pooled connection."""
        self._wire.close()
        if self._requests is not None:
            self._requests.close()

    def _check(self, spec: CheckSpec, attempt: Attempt) -> CheckResult:
        if not spec.url:
            return attempt.fail("no url to check")
        if spec.tls_ca and spec.verify_tls and not os.access(spec.tls_ca, os.R_OK):
            return attempt.fail(f"cannot read TLS CA file {spec.tls_ca}")
        target = parse_target(spec.url) if spec.method in LEAN_METHODS else None
        if target is None:
            return self._requests_exchange().check(spec, attempt)
        return self._lean(spec, attempt, target)

    def _lean(self, spec: CheckSpec, attempt: Attempt, target: Target) -> CheckResult:
        """1. send, following at most ``spec.max_redirects`` redirects (with 0 a redirect is judged
        like any other status); 2. judge the capped body."""
        # On the system's monotonic clock: it bounds real blocking calls whatever clock the check reads.
        deadline = time.monotonic() + attempt.remaining_s()
        verify = spec.tls_ca if spec.verify_tls and spec.tls_ca else spec.verify_tls
        method, url, headers = spec.method, spec.url or "", spec.headers
        redirects = 0
        while True:
            try:
                resp = self._wire.request(method, target, request_head(method, target, headers), verify, deadline,
                                          MAX_BODY_BYTES)
            except BodyFailed as exc:
                cause = exc.__cause__ or exc
                return attempt.fail(reason(cause, attempt, False, mid_body=True), status_code=exc.status,
                                    tls_expires_at=exc.tls_expires_at)
            except Exception as exc:
                return failed_exchange(spec, attempt, False, exc)
            location = resp.headers.get("location")
            if resp.status not in REDIRECT_STATUSES or location is None or spec.max_redirects == 0:
                break
            if redirects >= spec.max_redirects:
                return attempt.fail(f"too many redirects ({spec.max_redirects})")
            redirects += 1
            url = urljoin(url, _location(location))
            next_target = parse_target(url)
            if next_target is None:  # a URL only requests sends: the whole check goes there
                return self._requests_exchange().check(spec, attempt)
            if next_target.host != target.host:
                headers = {}  # never hand the spec's credentials to another host
            if resp.status == 303:
                method = "GET"
            target = next_target
        details: dict[str, object] = {"redirects": redirects} if redirects else {}
        if not resp.complete:
            details["truncated"] = True
        return judge(spec, attempt, resp.status, resp.headers.get("content-type", ""), resp.body, details,
                     resp.tls_expires_at)

    def _requests_exchange(self) -> RequestsExchange:
        with self._requests_lock:
            if self._requests is None:
                from orchestrator.health.checkers.http_requests import RequestsExchange

                self._requests = RequestsExchange(user_agent=USER_AGENT, pool_connections=self._pool_connections,
                                                  pool_maxsize=self._pool_maxsize)
            return self._requests


def request_head(method: str, target: Target, headers: dict[str, str]) -> bytes:
    """The request line and headers, as requests would send them: Host, the defaults, the spec's own
    (which replace a default of the same name). Raises ValueError for a header that would break the
    request (a line break in it)."""
    if not headers:
        return f"{method} {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n{_DEFAULT_TAIL}".encode("latin-1")
    merged = dict(DEFAULT_HEADERS)
    for name, value in headers.items():
        if any(ch in name or ch in value for ch in _BAD_HEADER_CHARS) or not name.strip() or ":" in name:
            raise ValueError(f"invalid header {name!r}")
        merged[name.lower()] = (name, value)
    lines = [f"{method} {target.path} HTTP/1.1"]
    if "host" not in merged:
        lines.append(f"Host: {target.host_header}")
    lines += [f"{name}: {value}" for name, value in merged.values()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _location(value: str) -> str:
    """A Location header as requests reads it: its bytes are UTF-8 more often than Latin-1."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def default_pool_connections() -> int:
    """Hosts to keep connections to: 3/4 of the open-files soft limit, at least MIN_POOL_CONNECTIONS."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4 * MIN_POOL_CONNECTIONS
    return max(MIN_POOL_CONNECTIONS, soft // 4 * 3)
