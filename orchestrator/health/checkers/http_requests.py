"""HTTP checks made with requests: the methods and URLs the lean client of ``wire.py`` leaves alone
(POST, PUT, OPTIONS; credentials or non-ASCII in the URL). Imported on first such check.

requests is the better tool there: it sends a body-less POST as servers expect (Content-Length: 0),
turns URL credentials into Basic auth and IDNA-encodes names, all rare in health checks and not
worth a second implementation.

Bounded as invariant 5 asks: ``timeout_s`` is a hard total over connect, TLS, headers and body
(every socket the pool hands out is registered with the :data:`WATCHDOG`, which shuts it down at
the deadline), and at most ``MAX_BODY_BYTES`` of body are read; a longer body closes the
connection instead of downloading the rest.
"""

from __future__ import annotations

import socket
import warnings
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
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

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import MAX_BODY_BYTES, CheckSpec
from orchestrator.health.checkers.base import WATCHDOG, Attempt, Deadline
from orchestrator.health.checkers.dns import is_ip_literal, resolve
from orchestrator.health.checkers.tls import client_context, peer_expiry
from orchestrator.health.checkers.verdict import failed_exchange, judge, reason

#: Lookup budget of a connection made outside any check (none armed): a check always has its own.
DEFAULT_RESOLVE_TIMEOUT_S = 5.0
_CHUNK_BYTES = 16 * 1024
#: requests' and urllib3's own exceptions for the verdict's reasons.
KINDS = {"timeouts": (requests.Timeout, ReadTimeoutError), "resolve_failures": (NameResolutionError,),
         "protocol_errors": (ProtocolError,)}

# An operator who sets verify_tls=False chose it; a warning on every check would only flood the log.
warnings.filterwarnings("ignore", category=InsecureRequestWarning)


class TooManyRedirects(Exception):
    """Raised when the redirect chain is longer than the spec allows."""


class RequestsExchange:
    """One thread-safe requests Session whose pools hold every host, for the checks it serves."""

    def __init__(self, *, user_agent: str, pool_connections: int, pool_maxsize: int) -> None:
        self._session = requests.Session()
        # No proxies or .netrc from the environment: a health check talks to the component itself.
        self._session.trust_env = False
        self._session.headers["User-Agent"] = user_agent
        adapter = _PoolAdapter(
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            max_retries=Retry(0, read=False, redirect=False),  # the tracker decides what a failure means
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def close(self) -> None:
        """Close every pooled connection."""
        self._session.close()

    def check(self, spec: CheckSpec, attempt: Attempt) -> CheckResult:
        deadline = WATCHDOG.arm(attempt.remaining_s())
        try:
            return self._exchange(spec, attempt, deadline)
        finally:
            WATCHDOG.disarm(deadline)

    def _exchange(self, spec: CheckSpec, attempt: Attempt, deadline: Deadline) -> CheckResult:
        """1. send, following redirects; 2. read the capped body; 3. judge it."""
        try:
            resp, redirects = self._send(spec, attempt)
        except TooManyRedirects:
            return attempt.fail(f"too many redirects ({spec.max_redirects})")
        except Exception as exc:
            return failed_exchange(spec, attempt, deadline.fired, exc, **KINDS)
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
                reason(exc, attempt, deadline.fired, mid_body=True, **KINDS), status_code=resp.status_code,
                bytes_read=len(body), tls_expires_at=tls_expires_at,
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
        return judge(spec, attempt, resp.status_code, resp.headers.get("content-type", ""), bytes(body), details,
                     tls_expires_at)

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
                raise TooManyRedirects
            redirects += 1
            target = urljoin(url, self._session.get_redirect_target(resp) or "")
            if urlsplit(target).hostname != urlsplit(url).hostname:
                headers = {}  # never hand the spec's credentials to another host
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
                method = "GET"
            url = target


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
            pool_kwargs["ssl_context"] = client_context(verify if isinstance(verify, str) else bool(verify))
            # the CA file is in that context already: urllib3 would load it into the shared one again
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
        return host_params, pool_kwargs

    def cert_verify(self, conn, url, verify, cert):  # type: ignore[no-untyped-def]
        # The CAs are in the shared context already; a path here would make urllib3 reload them.
        conn.cert_reqs = "CERT_REQUIRED" if verify else "CERT_NONE"
        conn.ca_certs = conn.ca_cert_dir = None
