"""A lean HTTP/1.1 client for plain health checks: kept-alive sockets per origin, a strict small parser.

Why not requests for every check: a plain GET through requests costs ~400-480 us of CPU on loopback,
urllib3's pool alone ~150-190 us, ``http.client`` ~70 us (its headers go through the ``email``
parser), a GET through this client 21-24 us and a whole check through it 26-50 us
(``bench/clients.py``, ``bench/checks.py``). Health checks are that GET, 200 times a second and more.

1. ``request()`` takes an idle connection of the origin (scheme, host, port, how TLS is verified) or
   opens one: the name looked up within the deadline (``dns.resolve``), connect, TLS handshake with
   the shared context (verification, host name, the certificate's expiry read once per connection).
2. The request goes out in one ``sendall``; the response head is parsed (status line, headers); the
   body is framed by Content-Length, chunked encoding or the connection's close, decoded (gzip,
   deflate: what the request accepts) and kept up to ``cap`` bytes.
3. A connection whose body was read to its end, on HTTP/1.1 without ``Connection: close``, goes back
   to its origin's idle list; any other is closed (an unfinished body is never drained).

Bounded (invariant 5, docs/guarantees.md): every blocking call (lookup, connect, handshake, send, each
receive) is given only the time left until the check's deadline on the system's monotonic clock, so
together they cannot outlast it: a server trickling a byte at a time gets ever shorter receives until
no time is left. A reused connection that the server closed while idle (EOF or reset before any byte
of the answer) is replaced once by a new one and the request sent again: only GET and HEAD come here,
both safe to repeat.

The parser refuses what it does not understand (a status line that is not HTTP/1.x, a bad or
contradictory Content-Length, a transfer coding other than chunked, a head over ``MAX_HEAD_BYTES``):
:class:`InvalidResponse`.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from urllib.parse import quote, urlsplit

from orchestrator.health.checkers.dns import resolve
from orchestrator.health.checkers.tls import peer_expiry

#: Longest response head (status line and headers) read before the response is refused.
MAX_HEAD_BYTES = 64 * 1024
#: Raw (still compressed) body bytes read at most, as a multiple of the decoded cap.
RAW_CAP_FACTOR = 16
_RECV_BYTES = 64 * 1024
#: What requests sends (urllib3 without brotli or zstd), decoded here as it would be.
ACCEPT_ENCODING = "gzip, deflate"
#: Parsed URLs kept (one per checked URL); beyond this the cache starts over.
_URL_CACHE_MAX = 1 << 16
_NO_BODY_STATUS = frozenset({204, 304})
#: Characters left as they are in a request target (what requests' requote_uri keeps).
_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"


class InvalidResponse(Exception):
    """Raised when the peer's answer is not an HTTP/1.x response this client understands."""


class ClosedEarly(Exception):
    """Raised when the peer closed (or reset) the connection before the response was complete;
    ``mid_body`` once the head had been read."""

    def __init__(self, mid_body: bool, got_bytes: bool, *, reset: bool = False) -> None:
        super().__init__("connection closed mid-response" if mid_body else "connection closed before response")
        self.mid_body = mid_body
        self.got_bytes = got_bytes
        self.reset = reset


class BodyFailed(Exception):
    """Raised when reading the body failed (its cause says how) after the head had been read: the
    status and the certificate's expiry are known and belong in the failed result."""

    def __init__(self, status: int, tls_expires_at: datetime | None) -> None:
        super().__init__(f"body of a {status} answer")
        self.status, self.tls_expires_at = status, tls_expires_at


class Target:
    """What a URL means on the wire, parsed once per URL."""

    __slots__ = ("scheme", "host", "port", "path", "host_header")

    def __init__(self, scheme: str, host: str, port: int, path: str, host_header: str) -> None:
        self.scheme, self.host, self.port, self.path, self.host_header = scheme, host, port, path, host_header


_targets: dict[str, Target | None] = {}


def parse_target(url: str) -> Target | None:
    """The wire form of an http(s) URL; None for what this client leaves to requests (credentials
    in the URL, non-ASCII, a bad port)."""
    target = _targets.get(url, False)
    if target is not False:
        return target  # type: ignore[return-value]
    target = _parse(url)
    if len(_targets) >= _URL_CACHE_MAX:
        _targets.clear()
    _targets[url] = target
    return target


def _parse(url: str) -> Target | None:
    if not url.isascii():
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    try:
        explicit = parts.port
    except ValueError:
        return None
    default = 443 if parts.scheme == "https" else 80
    port = explicit or default
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    path = quote(parts.path or "/", safe=_TARGET_SAFE) + (f"?{quote(parts.query, safe=_TARGET_SAFE)}"
                                                           if parts.query else "")
    return Target(parts.scheme, host, port, path, host_header)


class Response:
    """A response as read: status, headers (lower-case names, repeats joined by ", "), the body
    (decoded, at most the cap) and whether it was read to its end."""

    __slots__ = ("status", "headers", "body", "complete", "tls_expires_at")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, complete: bool,
                 tls_expires_at: datetime | None) -> None:
        self.status, self.headers, self.body = status, headers, body
        self.complete, self.tls_expires_at = complete, tls_expires_at


class _Conn:
    """One kept-alive connection; ``buf`` holds bytes received past the last response."""

    __slots__ = ("sock", "tls_expires_at")

    def __init__(self, sock: socket.socket, tls_expires_at: datetime | None) -> None:
        self.sock, self.tls_expires_at = sock, tls_expires_at

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class WireClient:
    """Idle connections per origin, shared by every check thread (one request per connection at a time).

    ``tls_context(verify)`` gives the client TLS context for ``verify`` (False, True, or a CA file's
    path); ``max_origins`` bounds the origins with idle connections, ``per_origin`` the idle
    connections kept for one (concurrent checks of one origin beyond it still run, on new ones).
    """

    def __init__(self, tls_context: Callable[[bool | str], ssl.SSLContext], *, max_origins: int,
                 per_origin: int) -> None:
        self._tls_context = tls_context
        self._max_origins = max(1, max_origins)
        self._per_origin = max(1, per_origin)
        # origin -> idle connections, newest last. Plain dict and list operations, atomic under the
        # interpreter lock: no lock on the hot path (a shared lock stalls every check thread).
        self._idle: dict[tuple, list[_Conn]] = {}
        self._evict_lock = threading.Lock()

    def request(self, method: str, target: Target, head: bytes, verify: bool | str, deadline: float,
                cap: int) -> Response:
        """Send ``head`` (the request head, ``\\r\\n\\r\\n`` ended) to ``target``'s origin and read the
        answer by monotonic time ``deadline``; raises OSError (TimeoutError at the deadline), ssl
        errors, :class:`ClosedEarly` or :class:`InvalidResponse`."""
        key = (target.scheme, target.host, target.port, verify if target.scheme == "https" else None)
        conn = self._take(key)
        if conn is not None:
            try:
                return self._exchange(conn, key, method, head, deadline, cap)
            except (ClosedEarly, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError) as exc:
                if isinstance(exc, ClosedEarly) and exc.got_bytes:
                    raise
                # closed by the server while idle: one new connection, the (idempotent) request again
        conn = self._connect(target, verify, deadline)
        return self._exchange(conn, key, method, head, deadline, cap)

    def close(self) -> None:
        """Close every idle connection."""
        with self._evict_lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    # -- connections ------------------------------------------------------------------------

    def _take(self, key: tuple) -> _Conn | None:
        conns = self._idle.get(key)
        if conns:
            try:
                return conns.pop()
            except IndexError:  # another thread took the last one
                return None
        return None

    def _give_back(self, key: tuple, conn: _Conn) -> None:
        conns = self._idle.get(key)
        if conns is None:
            if len(self._idle) >= self._max_origins:
                self._evict()
            conns = self._idle.setdefault(key, [])
        if len(conns) < self._per_origin:
            conns.append(conn)
        else:
            conn.close()

    def _evict(self) -> None:
        """Drop the idle connections of the origin that has had them longest."""
        with self._evict_lock:
            try:
                key = next(iter(self._idle))
            except StopIteration:
                return
            conns = self._idle.pop(key, [])
        for conn in conns:
            conn.close()

    def _connect(self, target: Target, verify: bool | str, deadline: float) -> _Conn:
        family, _, proto, _, address = resolve(target.host, target.port, _left(deadline))[0]
        sock = socket.socket(family, socket.SOCK_STREAM, proto)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(_left(deadline))
            sock.connect(address)
            expires_at = None
            if target.scheme == "https":
                sock.settimeout(_left(deadline))  # the handshake, all of it, within what is left
                sock = self._tls_context(verify).wrap_socket(sock, server_hostname=target.host)
                expires_at = peer_expiry(sock)
        except BaseException:
            sock.close()
            raise
        return _Conn(sock, expires_at)

    # -- one exchange -------------------------------------------------------------------------

    def _exchange(self, conn: _Conn, key: tuple, method: str, head: bytes, deadline: float, cap: int) -> Response:
        sock = conn.sock
        keep = False
        try:
            sock.settimeout(_left(deadline))
            sock.sendall(head)
            reader = _Reader(sock, deadline)
            status, headers, version = reader.head()
            while 100 <= status < 200 and status != 101:  # interim answers (100 Continue, 103 Early Hints)
                status, headers, version = reader.head()
            try:
                body, complete, framed = reader.body(method, status, headers, cap)
            except Exception as exc:
                raise BodyFailed(status, conn.tls_expires_at) from exc
            keep = complete and framed and _keeps_alive(version, headers) and not reader.rest
            return Response(status, headers, body, complete, conn.tls_expires_at)
        finally:
            if keep:
                self._give_back(key, conn)
            else:
                conn.close()


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def _keeps_alive(version: bytes, headers: dict[str, str]) -> bool:
    tokens = headers.get("connection", "").lower()
    if version == b"HTTP/1.1":
        return "close" not in tokens
    return "keep-alive" in tokens


class _Reader:
    """Reads one connection's response within the deadline; ``rest`` holds bytes past its end."""

    __slots__ = ("sock", "deadline", "rest", "got")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline
        self.rest = b""
        self.got = False  # any byte of the answer received

    def _recv(self, mid_body: bool) -> bytes:
        self.sock.settimeout(_left(self.deadline))
        try:
            data = self.sock.recv(_RECV_BYTES)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
            raise ClosedEarly(mid_body, self.got, reset=True) from None
        if not data:
            raise ClosedEarly(mid_body, self.got)
        self.got = True
        return data

    def head(self) -> tuple[int, dict[str, str], bytes]:
        buf = self.rest or self._recv(False)
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                head, self.rest = buf[:end], buf[end + 4:]
                break
            end = buf.find(b"\n\n")  # bare LF line ends, as http.client accepts them
            if end >= 0:
                head, self.rest = buf[:end], buf[end + 2:]
                break
            if len(buf) > MAX_HEAD_BYTES:
                raise InvalidResponse("response head too long")
            buf += self._recv(False)
        if len(head) > MAX_HEAD_BYTES:
            raise InvalidResponse("response head too long")
        lines = head.split(b"\n")
        parts = lines[0].rstrip(b"\r").split(b" ", 2)
        if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or not (
                len(parts[1]) == 3 and parts[1].isdigit()):
            raise InvalidResponse(f"bad status line {lines[0][:40]!r}")
        headers: dict[str, str] = {}
        name = ""
        for raw in lines[1:]:
            line = raw.rstrip(b"\r").decode("latin-1")
            if line[:1] in (" ", "\t") and name:  # an obsolete folded continuation
                headers[name] += " " + line.strip()
                continue
            name, sep, value = line.partition(":")
            name = name.strip().lower()
            if not sep or not name:
                raise InvalidResponse(f"bad header line {line[:40]!r}")
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return int(parts[1]), headers, parts[0]

    def body(self, method: str, status: int, headers: dict[str, str], cap: int) -> tuple[bytes, bool, bool]:
        """(body decoded and capped, read to its end, framed so the connection can be reused)."""
        if method == "HEAD" or status in _NO_BODY_STATUS:
            return b"", True, True
        coding = headers.get("content-encoding", "").strip().lower()
        decoder = _decoder(coding)
        transfer = headers.get("transfer-encoding")
        if transfer is not None:
            if transfer.strip().lower() != "chunked":
                raise InvalidResponse(f"unsupported transfer-encoding {transfer[:40]!r}")
            chunks = self._chunked()
            framed = "content-length" not in headers
        else:
            length = _content_length(headers.get("content-length"))
            if length is not None and decoder is None and len(self.rest) >= length:  # the common case
                body, self.rest = self.rest[:length], self.rest[length:]
                if len(body) > cap:
                    return body[:cap], False, False
                return body, True, True
            chunks = self._sized(length) if length is not None else self._until_close()
            framed = length is not None
        out = bytearray()
        raw_left = cap * RAW_CAP_FACTOR
        for chunk in chunks:
            raw_left -= len(chunk)
            if decoder is not None:
                chunk = decoder.decompress(chunk, cap - len(out) + 1)
            out += chunk
            if len(out) > cap or raw_left < 0:
                return bytes(out[:cap]), False, False
        if decoder is not None:
            out += decoder.flush()
            if len(out) > cap:
                return bytes(out[:cap]), False, False
        return bytes(out), True, framed

    def _sized(self, length: int):  # noqa: ANN202 - a generator of raw chunks
        left = length
        data, self.rest = self.rest, b""
        while True:
            if len(data) >= left:
                self.rest = data[left:]
                yield data[:left]
                return
            if data:
                yield data
                left -= len(data)
            data = self._recv(True)

    def _until_close(self):  # noqa: ANN202
        data, self.rest = self.rest, b""
        if data:
            yield data
        while True:
            try:
                data = self._recv(True)
            except ClosedEarly as exc:
                if exc.reset:  # a reset is no end of the body: the rest may be missing
                    raise
                return
            yield data

    def _chunked(self):  # noqa: ANN202
        while True:
            line = self._line()
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise InvalidResponse(f"bad chunk size {size_text[:20]!r}") from None
            if size < 0:
                raise InvalidResponse("bad chunk size")
            if size == 0:
                while self._line():  # trailers, up to the empty line
                    pass
                return
            yield from self._sized(size)
            if self._line():
                raise InvalidResponse("chunk not followed by CRLF")

    def _line(self) -> bytes:
        while True:
            end = self.rest.find(b"\n")
            if end >= 0:
                line, self.rest = self.rest[:end], self.rest[end + 1:]
                return line.rstrip(b"\r")
            if len(self.rest) > MAX_HEAD_BYTES:
                raise InvalidResponse("chunk line too long")
            self.rest += self._recv(True)


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1:
        raise InvalidResponse(f"conflicting content-length {value[:40]!r}")
    text = values.pop()
    if not text.isdigit():
        raise InvalidResponse(f"bad content-length {text[:40]!r}")
    return int(text)


def _decoder(coding: str):  # noqa: ANN202 - a zlib decompressor or None
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _Deflate()
    return None  # identity, or a coding not asked for: the bytes as they came (as urllib3 does)


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped, or (against the RFC, but common) raw."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj()
        self._first = True

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._z.decompress(data, max_length)
            except zlib.error:
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._z.decompress(data, max_length)

    def flush(self) -> bytes:
        return self._z.flush()
