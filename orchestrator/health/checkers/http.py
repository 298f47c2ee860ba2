"""HTTP checker: one request (plus capped redirects) judged on status, body, JSON and latency.

Bounded as invariant 5 asks: ``timeout_s`` is a hard total over connect, TLS, headers and body
(every socket the pool hands out is registered with the :data:`WATCHDOG`, which shuts it down at
the deadline), and at most ``MAX_BODY_BYTES`` of body are read; a longer body closes the
connection instead of downloading the rest.
"""

from __future__ import annotations

import codecs
import functools
import http.client
import json
import os
import re
import resource
import socket
import ssl
import warnings
from datetime import datetime
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    InsecureRequestWarning,
    NameResolutionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from orchestrator import __version__
from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import MAX_BODY_BYTES, CheckSpec
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.health.checkers.base import WATCHDOG, Attempt, Checker, Deadline
from orchestrator.health.checkers.dns import is_ip_literal, resolve
from orchestrator.health.checkers.tls import (
    CERT_HAS_EXPIRED,
    describe,
    fetch_expiry,
    judge_expiry,
    peer_expiry,
)

USER_AGENT = f"orchestrator-healthcheck/{__version__}"
#: Hosts whose connections are kept: one pool per host, so this is "every host we check". Checks
#: visit hosts round-robin, so a pool smaller than the fleet misses on every check (a new TCP
#: connection each time, about twice the CPU): by default it holds as many hosts as 3/4 of the
#: open-files limit allows (one kept-alive socket each), never fewer than this.
MIN_POOL_CONNECTIONS = 1024
#: Idle keep-alive connections kept per host; extra concurrent checks of one host still run.
DEFAULT_POOL_MAXSIZE = 4
#: Lookup budget of a connection made outside any check (none armed): a check always has its own.
DEFAULT_RESOLVE_TIMEOUT_S = 5.0
_CHUNK_BYTES = 16 * 1024
_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)
_PATH_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]")

# An operator who sets verify_tls=False chose it; a warning on every check would only flood the log.
warnings.filterwarnings("ignore", category=InsecureRequestWarning)


class HttpChecker(Checker):
    """Checks http(s) URLs through one shared, thread-safe connection pool holding every host."""

    kind = "http"

    def __init__(
        self,
        *,
        pool_connections: int | None = None,
        pool_maxsize: int = DEFAULT_POOL_MAXSIZE,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(clock=clock)
        self._session = requests.Session()
        # No proxies or .netrc from the environment: a health check talks to the component itself.
        self._session.trust_env = False
        self._session.headers["User-Agent"] = USER_AGENT
        adapter = _PoolAdapter(
            pool_connections=pool_connections or default_pool_connections(),
            pool_maxsize=pool_maxsize,
            max_retries=Retry(0, read=False, redirect=False),  # the tracker decides what a failure means
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def close(self) -> None:
        """Close every pooled connection."""
        self._session.close()

    def _check(self, spec: CheckSpec, attempt: Attempt) -> CheckResult:
        if not spec.url:
            return attempt.fail("no url to check")
        if spec.tls_ca and spec.verify_tls and not os.access(spec.tls_ca, os.R_OK):
            return attempt.fail(f"cannot read TLS CA file {spec.tls_ca}")
        deadline = WATCHDOG.arm(attempt.remaining_s())
        try:
            return self._exchange(spec, attempt, deadline)
        finally:
            WATCHDOG.disarm(deadline)

    def _exchange(self, spec: CheckSpec, attempt: Attempt, deadline: Deadline) -> CheckResult:
        """1. send, following redirects; 2. read the capped body; 3. judge it."""
        try:
            resp, redirects = self._send(spec, attempt)
        except _TooManyRedirects:
            return attempt.fail(f"too many redirects ({spec.max_redirects})")
        except Exception as exc:
            return _failed_exchange(spec, attempt, deadline, exc)
        details: dict[str, object] = {"redirects": redirects} if redirects else {}
        tls_expires_at = peer_expiry(getattr(resp.raw.connection, "sock", None)) if spec.url.startswith("https") \
            else None
        body = bytearray()
        complete = False
        try:
            while len(body) < MAX_BODY_BYTES and attempt.remaining_s() > 0:
                chunk = resp.raw.read(min(_CHUNK_BYTES, MAX_BODY_BYTES - len(body)), decode_content=True)
                if not chunk:
                    complete = True
                    break
                body += chunk
        except Exception as exc:
            return attempt.fail(
                _reason(exc, attempt, deadline, mid_body=True), status_code=resp.status_code, bytes_read=len(body),
                tls_expires_at=tls_expires_at,
            )
        finally:
            # An unfinished body means the connection holds unread bytes: close it rather than
            # return it to the pool (and rather than download the rest).
            if not complete or deadline.fired:
                resp.close()
        if deadline.fired or not (complete or len(body) >= MAX_BODY_BYTES):
            return attempt.fail(attempt.timeout_error(), status_code=resp.status_code, bytes_read=len(body),
                                tls_expires_at=tls_expires_at)
        if not complete:
            details["truncated"] = True
        return _judge(spec, attempt, resp, bytes(body), details, tls_expires_at)

    def _send(self, spec: CheckSpec, attempt: Attempt) -> tuple[requests.Response, int]:
        """Send the request and follow at most ``spec.max_redirects`` redirects within the deadline.

        With ``max_redirects=0`` a redirect is not followed but judged like any other status.

        The adapter is called directly: ``Session.send`` would read a whole redirect body to free
        its connection, and that body is not capped.
        """
        method, url, headers = spec.method, spec.url or "", dict(spec.headers)
        redirects = 0
        while True:
            prepared = self._session.prepare_request(requests.Request(method, url, headers=headers))
            remaining = attempt.remaining_s()
            if remaining <= 0:
                raise TimeoutError
            resp = self._session.get_adapter(url).send(
                prepared, stream=True, timeout=(remaining, remaining), verify=_verify(spec), proxies={}
            )
            if not resp.is_redirect or spec.max_redirects == 0:
                return resp, redirects
            resp.close()  # unread redirect body: drop the connection
            if redirects >= spec.max_redirects:
                raise _TooManyRedirects
            redirects += 1
            target = urljoin(url, self._session.get_redirect_target(resp) or "")
            if urlsplit(target).hostname != urlsplit(url).hostname:
                headers = {}  # never hand the spec's credentials to another host
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
                method = "GET"
            url = target


def default_pool_connections() -> int:
    """Hosts to keep connections to: 3/4 of the open-files soft limit, at least MIN_POOL_CONNECTIONS."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4 * MIN_POOL_CONNECTIONS
    return max(MIN_POOL_CONNECTIONS, soft // 4 * 3)


class _TooManyRedirects(Exception):
    """The redirect chain is longer than the spec allows."""


class _Watched:
    """Connection mixin: hand every socket, new or reused from the pool, to the watchdog."""

    sock: socket.socket | None
    _watched_for: Deadline | None = None

    def _new_conn(self) -> socket.socket:
        name = self._dns_host  # type: ignore[attr-defined]
        if not is_ip_literal(name):
            # Resolved inside the check's deadline (the watchdog cannot cut a lookup). urllib3 then
            # connects to the address; ``host`` (Host header, TLS name) is the name again at once.
            address = _resolve_within_deadline(self, name, self.port)  # type: ignore[attr-defined]
            self._dns_host = address
            try:
                sock = super()._new_conn()  # type: ignore[misc]
            finally:
                self._dns_host = name
        else:
            sock = super()._new_conn()  # type: ignore[misc]
        # Before the TLS handshake, which can trickle too; a duplicate, since the wrap detaches ``sock``.
        self._watched_for = WATCHDOG.watch(sock)
        return sock

    def request(self, *args: object, **kwargs: object) -> None:
        # A kept-alive connection from the pool: _new_conn was called for an earlier check.
        if self.sock is not None and self._watched_for is not WATCHDOG.current():
            self._watched_for = WATCHDOG.watch(self.sock, own=False)
        super().request(*args, **kwargs)  # type: ignore[misc]


def _resolve_within_deadline(conn: object, name: str, port: int) -> str:
    """The first address of ``name``, looked up within the calling check's deadline; raised as the
    urllib3 errors requests maps to a timeout or a name-resolution failure."""
    deadline = WATCHDOG.current()
    remaining = deadline.remaining_s() if deadline is not None else DEFAULT_RESOLVE_TIMEOUT_S
    try:
        return resolve(name, port, remaining)[0][4][0]
    except TimeoutError as exc:
        raise ConnectTimeoutError(conn, f"resolving {name}: {exc}") from exc
    except socket.gaierror as exc:
        raise NameResolutionError(name, conn, exc) from exc  # type: ignore[arg-type]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _verify(spec: CheckSpec) -> bool | str:
    """What requests calls ``verify``: False, True, or the path of the component's own CA file."""
    return spec.tls_ca if spec.verify_tls and spec.tls_ca else spec.verify_tls


@functools.cache
def _tls_context(verify: bool | str) -> ssl.SSLContext:
    """The process-wide client TLS context, verifying or not (or also trusting a component's CA file,
    read once per process), built once.

    Left to itself requests loads the CA bundle again for every new connection (~80 ms of CPU).
    """
    if verify:
        context = ssl.create_default_context(cafile=DEFAULT_CA_BUNDLE_PATH)
        if isinstance(verify, str):
            context.load_verify_locations(cafile=verify)
        return context
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _PoolAdapter(HTTPAdapter):
    """An adapter whose pools create connections the deadline watchdog can cut, sharing the
    preloaded TLS contexts."""

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        # origin -> pool, read without a lock. The PoolManager finds a pool under one lock shared by
        # every check thread; a thread preempted while holding it stalls them all (py-spy of a worker
        # at N=10,000: 106 of 128 threads waiting there).
        self._direct: dict[tuple[str, bool, object], HTTPConnectionPool] = {}
        self._direct_max = max(1, self._pool_connections - 1)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):  # type: ignore[no-untyped-def]
        if proxies:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)
        url = request.url
        end = url.find("/", url.find("//") + 2)
        # scheme://userinfo@host:port, and how it is verified (a CA file's path is its own pool)
        key = (url if end < 0 else url[:end], verify if isinstance(verify, str) else verify is not False, cert)
        pool = self._direct.get(key)
        if pool is None:
            pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
            if len(self._direct) >= self._direct_max:
                # Below the PoolManager's own capacity, so it never closes a pool this map still
                # hands out: each pool here was touched in its LRU after the last clear.
                self._direct.clear()
            self._direct[key] = pool
        return pool

    def build_connection_pool_key_attributes(self, request, verify, cert=None):  # type: ignore[no-untyped-def]
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https":
            pool_kwargs["ssl_context"] = _tls_context(verify if isinstance(verify, str) else bool(verify))
            # the CA file is in that context already: urllib3 would load it into the shared one again
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert):  # type: ignore[no-untyped-def]
        # The CAs are in the shared context already; a path here would make urllib3 reload them.
        conn.cert_reqs = "CERT_REQUIRED" if verify else "CERT_NONE"
        conn.ca_certs = conn.ca_cert_dir = None


def _reason(exc: BaseException, attempt: Attempt, deadline: Deadline, *, mid_body: bool) -> str:
    """One short line for a failed exchange; anything after the deadline is a timeout."""
    if deadline.fired or attempt.remaining_s() <= 0:
        return attempt.timeout_error()
    chain = _chain(exc)

    def has(*kinds: type[BaseException]) -> bool:
        return any(isinstance(e, kinds) for e in chain)

    # Not urllib3's TimeoutError: its NewConnectionError (e.g. refused) is a subclass of it.
    if has(requests.Timeout, TimeoutError, ReadTimeoutError):
        return attempt.timeout_error()
    verify_error = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if verify_error is not None and verify_error.verify_message:
        # "Hostname mismatch, certificate is not valid for 'wrong.example'.", "self-signed certificate"
        return f"TLS certificate verify failed: {verify_error.verify_message.rstrip('.')}"
    if verify_error is not None or "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return "TLS certificate verify failed"
    if has(ConnectionRefusedError):
        return "connection refused"
    if has(NameResolutionError, socket.gaierror):
        return "cannot resolve host"
    if has(ssl.SSLError):
        return f"TLS error: {next(e for e in chain if isinstance(e, ssl.SSLError)).reason or exc}"
    if mid_body or has(http.client.IncompleteRead):
        return "connection closed mid-response"
    if has(http.client.RemoteDisconnected, ConnectionResetError, ProtocolError):
        return "connection closed before response"
    return f"{type(exc).__name__}: {exc}"


def _failed_exchange(spec: CheckSpec, attempt: Attempt, deadline: Deadline, exc: BaseException) -> CheckResult:
    """The failed result of an exchange that raised; a certificate refused as expired is looked at
    again (unverified) so the reason says when it expired and the record keeps the date."""
    chain = _chain(exc)
    expired = any(isinstance(e, ssl.SSLCertVerificationError) and e.verify_code == CERT_HAS_EXPIRED for e in chain)
    if expired and not deadline.fired:
        parts = urlsplit(spec.url or "")
        expires_at = fetch_expiry(parts.hostname or "", parts.port or 443, attempt.remaining_s())
        if expires_at is not None:
            return attempt.fail(describe(expires_at, attempt.checked_at), tls_expires_at=expires_at)
    return attempt.fail(_reason(exc, attempt, deadline, mid_body=False))


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (causes, contexts, urllib3 reasons, exception args), bounded."""
    out: list[BaseException] = []
    todo = [exc]
    while todo and len(out) < 16:
        cur = todo.pop()
        if any(cur is seen for seen in out):
            continue
        out.append(cur)
        for nxt in (cur.__cause__, cur.__context__, getattr(cur, "reason", None), *cur.args):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return out


def _judge(
    spec: CheckSpec, attempt: Attempt, resp: requests.Response, body: bytes, details: dict[str, object],
    tls_expires_at: datetime | None = None,
) -> CheckResult:
    """The verdict, first failing rule wins: status, body text, JSON conditions, latency, then the
    certificate's days left (a failure below ``tls_critical_days``, a warning below ``tls_warn_days``)."""
    facts: dict[str, object] = {"status_code": resp.status_code, "bytes_read": len(body), "details": details,
                                "tls_expires_at": tls_expires_at}
    ranges = spec.status_ranges()
    if not any(low <= resp.status_code <= high for low, high in ranges):
        shown = ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)
        return attempt.fail(f"status {resp.status_code} not in {shown}", **facts)
    if spec.body_contains is not None and spec.body_contains not in _text(resp, body):
        return attempt.fail(f"body does not contain {spec.body_contains!r}", **facts)
    conditions = spec.json_condition_parts()
    if conditions:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested input
            return attempt.fail("invalid JSON body", **facts)
        for path, op, literal in conditions:
            problem = _condition_problem(doc, path, op, literal)
            if problem:
                return attempt.fail(problem, **facts)
    latency_ms = attempt.elapsed_ms()
    if spec.max_latency_ms is not None and latency_ms > spec.max_latency_ms:
        return attempt.fail(f"latency {latency_ms:.0f} ms > max {spec.max_latency_ms:g} ms", **facts)
    if tls_expires_at is not None:
        failure, warning = judge_expiry(tls_expires_at, attempt.checked_at, spec.tls_warn_days,
                                        spec.tls_critical_days)
        if failure:
            return attempt.fail(failure, **facts)
        return attempt.succeed(warning=warning, **facts)
    return attempt.succeed(**facts)


def _text(resp: requests.Response, body: bytes) -> str:
    """The body as text: the declared charset, else UTF-8; bad bytes never raise."""
    match = _CHARSET.search(resp.headers.get("content-type", ""))
    encoding = "utf-8"
    if match:
        try:
            encoding = codecs.lookup(match.group(1)).name
        except LookupError:
            pass
    return body.decode(encoding, errors="replace")


def _condition_problem(doc: object, path: str, op: str, literal: str) -> str | None:
    """None when ``$<path> <op> <literal>`` holds for ``doc``, else the one-line reason."""
    try:
        expected = json.loads(literal)
    except ValueError:
        return f"condition ${path}: {literal} is not a JSON value"
    node = doc
    for key, index in _PATH_STEP.findall(path):
        if key and isinstance(node, dict) and key in node:
            node = node[key]
        elif index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        else:
            return f"${path} is missing"
    # JSON true is not 1: compare booleans only with booleans.
    if isinstance(node, bool) or isinstance(expected, bool):
        equal = type(node) is type(expected) and node == expected
    else:
        equal = node == expected
    if equal == (op == "=="):
        return None
    shown = json.dumps(node, ensure_ascii=False)
    shown = shown if len(shown) <= 60 else shown[:59] + "…"
    wanted = json.dumps(expected, ensure_ascii=False)
    return f"${path} is {shown}, expected {wanted}" if op == "==" else f"${path} is {shown}, expected not {wanted}"
