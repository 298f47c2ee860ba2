"""Loopback HTTP(S) servers for tests, with misbehaviour switchable at run time.

    with LoopbackHTTPServer() as server:
        server.set_mode("hang")       # see MODES
        check(server.url)
        server.crash()                # listening socket closed: connection refused, for real
        server.restart()              # same port again

Handlers run in daemon threads and every slow mode waits on an event that ``crash()``/``stop()``
set, so a hanging handler never keeps a test (or the interpreter) from finishing.
"""

from __future__ import annotations

import atexit
import functools
import random
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MODES = frozenset({
    "ok", "500", "hang", "slow", "trickle_body", "trickle_headers", "huge", "invalid_utf8",
    "invalid_json", "redirect_loop", "redirect_once", "close_mid_response", "json_down",
})  # fmt: skip
OK_BODY = b'{"status": "UP", "checks": [{"name": "db", "ok": true}]}'
DOWN_BODY = b'{"status": "DOWN", "checks": [{"name": "db", "ok": false}]}'
#: Content-Length announced by the "huge" mode: far more than any client should read.
HUGE_BYTES = 1 << 30
#: Upper bound on any handler's wait, so a forgotten server cannot hold a thread for long.
MAX_HANDLER_WAIT_S = 30.0


def wait_for(predicate: Callable[[], object], timeout_s: float = 5.0, interval_s: float = 0.01) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout_s`` passes; returns its last verdict."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval_s)


class LoopbackHTTPServer:
    """A threaded HTTP/1.1 (keep-alive) server on 127.0.0.1 and an ephemeral port.

    Counters for assertions: ``hits`` (requests seen), ``connections`` (accepted), ``bytes_sent``
    (bytes written), ``active`` (requests being answered now); ``last_request`` is
    (method, path, headers).
    """

    scheme = "http"

    def __init__(self, mode: str = "ok", *, path: str = "/health", slow_delay_s: float = 0.5,
                 trickle_interval_s: float = 0.2) -> None:  # fmt: skip
        self.path = path
        self.slow_delay_s = slow_delay_s
        self.trickle_interval_s = trickle_interval_s
        self.hits = 0
        self.connections = 0
        self.bytes_sent = 0
        self.active = 0
        self.last_request: tuple[str, str, dict[str, str]] | None = None
        self.port = 0
        self._mode = "ok"
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self.set_mode(mode)
        self.restart()

    @property
    def url(self) -> str:
        """The URL of the health path, e.g. ``http://127.0.0.1:41234/health``."""
        return f"{self.scheme}://127.0.0.1:{self.port}{self.path}"

    def set_mode(self, mode: str) -> None:
        """Switch how the next requests are answered; one of :data:`MODES`."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {sorted(MODES)}")
        with self._lock:
            self._mode = mode

    def restart(self) -> None:
        """Listen again (on the same port after a crash); a no-op while listening."""
        if self._server is not None:
            return
        server = _Server(("127.0.0.1", self.port or _stable_port()), _Handler)
        server.owner = self
        server.ssl_context = self.make_ssl_context()
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True,
                                        name=f"loopback-{self.port}")  # fmt: skip
        self._thread.start()

    def crash(self) -> None:
        """Close the listening socket and cut every open connection, as a dying process would."""
        with self._lock:
            server, self._server = self._server, None
            conns, self._conns = self._conns, set()
            if server is None:
                return
            server.closed.set()  # wakes hanging and trickling handlers; refuses late _track()s
        server.shutdown()
        server.server_close()
        for conn in conns:
            _cut(conn)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def stop(self) -> None:
        """Stop for good (same as crash; kept separate for readability at call sites)."""
        self.crash()

    def __enter__(self) -> LoopbackHTTPServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def make_ssl_context(self) -> ssl.SSLContext | None:
        """Server-side TLS context, or None for plain HTTP."""
        return None

    # -- called from handler threads --------------------------------------------------------

    def _track(self, conn: socket.socket, server: _Server) -> bool:
        with self._lock:
            if server.closed.is_set():
                return False
            self.connections += 1
            self._conns.add(conn)
            return True

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _respond(self, h: _Handler) -> None:
        with self._lock:
            self.hits += 1
            self.active += 1
            self.last_request = (h.command, h.path, dict(h.headers.items()))
            mode = self._mode
        try:
            _ANSWERS[mode](self, h, h.server.closed)
        except OSError:
            h.close_connection = True  # the client went away: nothing more to say
        finally:
            with self._lock:
                self.active -= 1

    def _count(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n


class TlsLoopbackServer(LoopbackHTTPServer):
    """The same server behind TLS with a self-signed certificate for 127.0.0.1 (made at test time)."""

    scheme = "https"

    def make_ssl_context(self) -> ssl.SSLContext:
        cert, key = self_signed_cert()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context


@functools.cache
def self_signed_cert() -> tuple[str, str]:
    """(cert path, key path) of a throwaway self-signed EC certificate for IP 127.0.0.1."""
    folder = Path(tempfile.mkdtemp(prefix="loopback-tls-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "90", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return str(cert), str(key)


def _stable_port() -> int:
    """A free port below the kernel's ephemeral range (``ip_local_port_range``, 32768-60999 here), so that
    after a crash no outgoing connection's local port, nor another test's port-0 listener, can take it
    before :meth:`LoopbackHTTPServer.restart` listens again (the soak met "Address already in use"
    with four workers); 0 (any port) if none is found."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never wait for hanging handlers on close
    allow_reuse_address = True  # restart() on the same port despite TIME_WAIT connections
    owner: LoopbackHTTPServer
    ssl_context: ssl.SSLContext | None = None

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.closed = threading.Event()
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up or reject our certificate are expected here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = MAX_HANDLER_WAIT_S  # idle keep-alive connections do not hold a thread forever
    server: _Server

    def setup(self) -> None:
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every kept-alive request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        context = self.server.ssl_context
        if context is not None:
            self.request.settimeout(5)
            self.request = context.wrap_socket(self.request, server_side=True)
        super().setup()
        if not self.server.owner._track(self.request, self.server):
            _cut(self.request)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._untrack(self.request)

    def handle_one_request(self) -> None:
        super().handle_one_request()
        if self.server.closed.is_set():
            self.close_connection = True

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.owner._respond(self)

    do_HEAD = do_POST = do_PUT = do_OPTIONS = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


def _cut(conn: socket.socket) -> None:
    try:
        socket.socket.shutdown(conn, socket.SHUT_RDWR)
    except OSError:
        pass


def _write(owner: LoopbackHTTPServer, h: _Handler, data: bytes) -> None:
    h.wfile.write(data)
    h.wfile.flush()
    owner._count(len(data))


def _simple(status: int, body: bytes, ctype: str = "application/json", **headers: str):
    def answer(owner: LoopbackHTTPServer, h: _Handler, closed: threading.Event) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            h.send_header(name.replace("_", "-"), value)
        h.end_headers()
        if h.command != "HEAD":
            _write(owner, h, body)

    return answer


def _hang(owner: LoopbackHTTPServer, h: _Handler, closed: threading.Event) -> None:
    closed.wait(MAX_HANDLER_WAIT_S)
    h.close_connection = True


def _slow(owner: LoopbackHTTPServer, h: _Handler, closed: threading.Event) -> None:
    if not closed.wait(owner.slow_delay_s):
        _simple(200, OK_BODY)(owner, h, closed)


def _trickle_body(owner: LoopbackHTTPServer, h: _Handler, closed: threading.Event) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    h.wfile.flush()
    for _ in range(1000):
        if closed.wait(owner.trickle_interval_s):
            break
        _write(owner, h, b"x")
    h.close_connection = True


def _trickle_headers(owner: LoopbackHTTPServer, h: _Handler, closed: threading.Event) -> None:
    _write(owner, h, b"HTTP/1.1 200 OK\r\nX-Slow: ")
    for _ in range(1000):
        if closed.wait(owner.trickle_interval_s):
            break
        _write(owner, h, b"z")
    h.close_connection = True


def _huge(owner: LoopbackHTTPServer, h: _Handler, closed: threading.Event) -> None:
    h.send_response(200)
    h.send_header("Content-Length", str(HUGE_BYTES))
    h.end_headers()
    chunk = b"0" * 65536
    for _ in range(HUGE_BYTES // len(chunk)):
        if closed.is_set():
            break
        _write(owner, h, chunk)  # raises OSError once the client hangs up
    h.close_connection = True


def _redirect_once(owner: LoopbackHTTPServer, h: _Handler, closed: threading.Event) -> None:
    if "redirected" in h.path:
        _simple(200, OK_BODY)(owner, h, closed)
    else:
        _simple(302, b"", "text/plain", Location=f"{owner.path}?redirected=1")(owner, h, closed)


def _close_mid_response(owner: LoopbackHTTPServer, h: _Handler, closed: threading.Event) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "100")
    h.end_headers()
    _write(owner, h, b'{"status": ')
    _cut(h.connection)
    h.close_connection = True


_ANSWERS: dict[str, Callable[[LoopbackHTTPServer, _Handler, threading.Event], None]] = {
    "ok": _simple(200, OK_BODY),
    "500": _simple(500, b"internal error", "text/plain"),
    "json_down": _simple(200, DOWN_BODY),
    "invalid_json": _simple(200, b'{"status": "UP", '),
    "invalid_utf8": _simple(200, b"\xff\xfe all ok \xc3\x28 \x80", "text/plain; charset=utf-8"),
    "redirect_loop": _simple(302, b"", "text/plain", Location="/loop"),
    "redirect_once": _redirect_once,
    "hang": _hang,
    "slow": _slow,
    "trickle_body": _trickle_body,
    "trickle_headers": _trickle_headers,
    "huge": _huge,
    "close_mid_response": _close_mid_response,
}
