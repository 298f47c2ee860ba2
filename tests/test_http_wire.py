"""The lean HTTP/1.1 client of plain checks (checkers/wire.py) against real loopback servers that answer
exactly the bytes a test scripts: kept-alive connections closed by the server, framing (chunked,
close-delimited, gzip), malformed answers, proxies in the environment, TLS expiry on a reused connection."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import trustme

from orchestrator import __version__
from orchestrator.core.check_spec import MAX_BODY_BYTES, CheckSpec
from orchestrator.health.checkers import HttpChecker
from tests.servers import LoopbackHTTPServer, TlsLoopbackServer
from tests.tls_servers import CertServer, leaf

#: (connection number, request number on it, request bytes) -> bytes to answer, or None to close
#: the connection without answering
Script = Callable[[int, int, bytes], bytes | None]


def answer(body: bytes = b"ok", status: str = "200 OK", *headers: str, version: str = "HTTP/1.1") -> bytes:
    head = [f"{version} {status}", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ScriptedServer:
    """A loopback server whose answers a function gives, byte for byte; counts connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn:
            conn.settimeout(10)
            buf = b""
            for index in range(1, 1000):
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                request, buf = buf.split(b"\r\n\r\n", 1)
                self.requests.append(request)
                out = self.script(number, index, request)
                if out is None:
                    return
                conn.sendall(out)
                if out.startswith(b"HTTP/1.0"):
                    return  # an HTTP/1.0 answer without Content-Length ends where the connection does

    def close(self) -> None:
        self._closed = True
        self._listener.close()


@pytest.fixture
def checker() -> Iterator[HttpChecker]:
    chk = HttpChecker()
    yield chk
    chk.close()


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def make(script: Script) -> ScriptedServer:
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_a_kept_alive_connection_the_server_closed_is_no_false_failure(checker, scripted) -> None:
    # Each connection answers its first request; a second request on it finds the server gone (its
    # keep-alive timeout ran out as the request arrived): the next check opens a new connection.
    server = scripted(lambda conn, index, req: answer() if index == 1 else None)
    results = [checker.check(CheckSpec(url=server.url), timeout_s=5) for _ in range(4)]
    assert [r.error for r in results] == [None] * 4
    assert server.connections == 4


def test_a_connection_closed_while_idle_is_replaced_quietly(checker, scripted) -> None:
    server = scripted(lambda conn, index, req: answer())
    spec = CheckSpec(url=server.url)
    assert checker.check(spec, timeout_s=5).ok and checker.check(spec, timeout_s=5).ok
    assert server.connections == 1  # kept alive across checks
    server.script = lambda conn, index, req: answer(b"ok", "200 OK", "Connection: close")
    assert checker.check(spec, timeout_s=5).ok  # the server closes after this answer
    assert checker.check(spec, timeout_s=5).ok
    assert server.connections == 2


@pytest.mark.parametrize("server_class", [LoopbackHTTPServer, TlsLoopbackServer], ids=["http", "https"])
def test_a_server_restarted_between_checks_is_no_false_failure(checker, server_class) -> None:
    with server_class() as server:
        spec = CheckSpec(url=server.url, verify_tls=False)
        assert checker.check(spec, timeout_s=5).ok  # leaves a kept-alive connection
        server.crash()  # cuts it
        server.restart()
        result = checker.check(spec, timeout_s=5)
        assert result.ok, result.error
        assert server.connections == 2


def test_an_endpoint_that_starts_hanging_on_a_kept_alive_connection_fails_at_the_deadline(checker) -> None:
    import time

    with LoopbackHTTPServer() as server:
        spec = CheckSpec(url=server.url)
        assert checker.check(spec, timeout_s=5).ok
        server.set_mode("hang")
        started = time.monotonic()
        result = checker.check(spec, timeout_s=1.0)
        elapsed = time.monotonic() - started
        assert result.error == "timeout after 1s" and result.timed_out
        assert 0.9 < elapsed < 2.5
        assert server.connections == 1  # the kept-alive one, not retried on a new one
        server.set_mode("ok")
        assert checker.check(spec, timeout_s=5).ok  # on a new connection: the cut one was dropped


@pytest.mark.parametrize("mode, error", [("close_mid_response", "connection closed mid-response"),
                                         ("trickle_body", "timeout after 1s")])
def test_a_body_that_fails_keeps_the_status_in_the_result(checker, mode: str, error: str) -> None:
    with LoopbackHTTPServer(mode) as server:
        result = checker.check(CheckSpec(url=server.url), timeout_s=1.0)
    assert (result.ok, result.error, result.status_code) == (False, error, 200)
    assert result.timed_out == (mode == "trickle_body")


def test_more_hosts_than_the_pool_holds_still_check_fine(scripted) -> None:
    servers = [scripted(lambda conn, index, req: answer()) for _ in range(3)]
    small = HttpChecker(pool_connections=2)
    try:
        results = [small.check(CheckSpec(url=s.url), timeout_s=5) for _ in range(3) for s in servers]
    finally:
        small.close()
    assert all(r.ok for r in results), {r.error for r in results}


def test_a_server_that_never_answers_a_new_connection_fails_once(checker, scripted) -> None:
    server = scripted(lambda conn, index, req: None)
    result = checker.check(CheckSpec(url=server.url), timeout_s=5)
    assert result.error == "connection closed before response"
    assert server.connections == 1  # no retry on a connection that was new


@pytest.mark.parametrize("raw, body", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nall \r\n2\r\nok\r\n0\r\nX-Trailer: 1\r\n\r\n",
     b"all ok"),
    (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall ok until close", b"all ok until close"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nall ok", b"all ok"),
    (b"HTTP/1.1 200 OK\nContent-Length: 6\n\nall ok", b"all ok"),
    (answer(gzip.compress(b"all ok, gzipped"), "200 OK", "Content-Encoding: gzip"), b"all ok, gzipped"),
], ids=["chunked", "http-1.0-until-close", "interim-100", "bare-lf", "gzip"])
def test_framings(checker, scripted, raw: bytes, body: bytes) -> None:
    def script(conn: int, index: int, req: bytes) -> bytes | None:
        return raw if index == 1 else None

    server = scripted(script)
    result = checker.check(CheckSpec(url=server.url, body_contains=body.decode()), timeout_s=5)
    assert result.ok, result.error
    assert result.bytes_read == len(body)


def test_a_huge_chunked_gzip_body_is_capped(checker, scripted) -> None:
    packed = gzip.compress(b"0" * (4 * MAX_BODY_BYTES))
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(packed[i:i + 1000]), packed[i:i + 1000])
                       for i in range(0, len(packed), 1000)) + b"0\r\n\r\n"
    server = scripted(lambda conn, index, req: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                      b"Content-Encoding: gzip\r\n\r\n" + chunked)
    result = checker.check(CheckSpec(url=server.url), timeout_s=5)
    assert result.ok and result.bytes_read == MAX_BODY_BYTES and result.details["truncated"] is True


@pytest.mark.parametrize("raw, error", [
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "invalid HTTP response: bad status line b'SSH-2.0-OpenSSH_9.2'"),
    (answer(b"ok", "200 OK", "Content-Length: 2, 3"), "invalid HTTP response: conflicting content-length '2, 3'"),
    (answer(b"ok", "200 OK", "Content-Length: two"), "invalid HTTP response: bad content-length 'two'"),
    (answer(b"ok", "200 OK", "Transfer-Encoding: gzip"), "invalid HTTP response: unsupported transfer-encoding 'gzip'"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid HTTP response: bad chunk size b'zz'"),
    (b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * 70000 + b"\r\n\r\n", "invalid HTTP response: response head too long"),
], ids=["not-http", "conflicting-length", "bad-length", "unknown-transfer-coding", "bad-chunk", "head-too-long"])
def test_answers_the_parser_does_not_understand_fail_in_one_line(checker, scripted, raw: bytes, error: str) -> None:
    server = scripted(lambda conn, index, req: raw)
    assert checker.check(CheckSpec(url=server.url), timeout_s=5).error == error


def test_the_request_carries_the_defaults_and_the_specs_headers(checker, scripted) -> None:
    server = scripted(lambda conn, index, req: answer())
    spec = CheckSpec(url=f"{server.url}?a=1&b=x|y", headers={"X-Probe": "yes", "accept": "application/json"})
    assert checker.check(spec, timeout_s=5).ok
    lines = server.requests[-1].decode().split("\r\n")
    assert lines[0] == "GET /health?a=1&b=x%7Cy HTTP/1.1"
    assert lines[1:] == [f"Host: 127.0.0.1:{server.port}", f"User-Agent: orchestrator-healthcheck/{__version__}",
                         "Accept-Encoding: gzip, deflate", "accept: application/json", "Connection: keep-alive",
                         "X-Probe: yes"]
    broken = checker.check(CheckSpec(url=server.url, headers={"X-Evil": "a\r\nInjected: 1"}), timeout_s=5)
    assert broken.error == "ValueError: invalid header 'X-Evil'"


def test_redirect_to_another_host_drops_the_specs_headers_and_303_turns_head_into_get(checker, scripted) -> None:
    final = scripted(lambda conn, index, req: answer())
    first = scripted(lambda conn, index, req: answer(b"", "303 See Other",
                                                     f"Location: http://localhost:{final.port}/there"))
    result = checker.check(CheckSpec(url=first.url, method="HEAD", headers={"Authorization": "Bearer s3cret"}),
                           timeout_s=5)
    assert result.ok and result.details["redirects"] == 1
    assert b"Authorization" in first.requests[0] and b"Authorization" not in final.requests[0]
    assert final.requests[0].startswith(b"GET /there HTTP/1.1\r\nHost: localhost:")


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "HTTPS_PROXY"])
def test_proxies_from_the_environment_are_ignored(checker, monkeypatch, variable: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    monkeypatch.setenv(variable, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "")
    with LoopbackHTTPServer() as server:
        assert checker.check(CheckSpec(url=server.url), timeout_s=5).ok
        # the rarer checks requests makes ignore them too
        assert checker.check(CheckSpec(url=server.url, method="POST"), timeout_s=5).ok


def test_tls_expiry_is_recorded_on_every_check_of_a_kept_alive_connection(checker, tmp_path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with CertServer(leaf(ca, expires_in=timedelta(days=90))) as server:
        spec = CheckSpec(url=server.url, tls_ca=str(ca_file))
        results = [checker.check(spec, timeout_s=5) for _ in range(3)]
        assert server.connections == 1
    assert all(r.ok and r.tls_expires_at is not None for r in results), results
    assert abs(results[2].tls_expires_at - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=1)
