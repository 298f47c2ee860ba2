"""``orchestrator.client.Degradation`` against a real loopback HTTP server that implements the published
contract of ``GET /api/v1/degradation`` (version counter, ETag / If-None-Match, the after+wait long-poll,
404 for an unknown scope) and can be switched to answer 500, invalid JSON, hang or stop listening.
Time is a FakeClock wherever the client decides by time; the watch tests use the system clock because
the watch thread's pauses are real waits."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from orchestrator.client import FAILURE_THRESHOLD, RETRY_BASE_S, RETRY_CAP_S, Degradation, Snapshot
from orchestrator.core.clock import FakeClock
from orchestrator.resilience.backoff import exponential_delay
from tests.daemon_helpers import poll

FEATURES = {
    "normal": {"caching": True, "analytics": True, "realtime_updates": True, "background_tasks": True},
    "degraded": {"caching": True, "analytics": False, "realtime_updates": False, "background_tasks": "reduced"},
    "minimal": {"caching": True, "analytics": False, "realtime_updates": False, "background_tasks": False},
    "emergency": {"caching": "serve_stale", "analytics": False, "realtime_updates": False, "background_tasks": 0},
}
TTL_S = 10


class ContractServer:
    """The degradation endpoint as the contract describes it, on 127.0.0.1.

    ``hits`` counts answers by kind: ``200`` (full body), ``304``, ``poll_200``, ``poll_304``, ``404``,
    ``500``, ``bad_json``, ``hang``. ``mode`` switches the next answers: ok, 500, bad_json, hang.
    ``history`` maps every published version to its level (for consistency checks)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.version, self.level, self.ttl_s = 1, "normal", TTL_S
        self.history = {1: "normal"}
        self.mode = "ok"
        self.hits: Counter[str] = Counter()
        self.queries: list[dict[str, list[str]]] = []
        self.auth: list[str | None] = []
        self.in_flight = self.max_in_flight = 0
        self.closing = threading.Event()  # wakes long-polls and hanging requests
        self.httpd: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.closing.clear()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        """Stop listening: connections are refused from now on."""
        with self.cond:
            self.closing.set()
            self.cond.notify_all()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def publish(self, level: str) -> int:
        with self.cond:
            self.version += 1
            self.level = level
            self.history[self.version] = level
            self.cond.notify_all()
            return self.version

    def full_bodies(self) -> int:
        return self.hits["200"] + self.hits["poll_200"]

    def requests(self) -> int:
        return sum(self.hits.values())

    def document(self) -> dict:
        return {"scope": "global", "level": self.level, "version": self.version,
                "since": "2026-12-05T09:00:00+00:00", "reasons": [f"{self.level}: test"],
                "features": FEATURES[self.level], "ttl_s": self.ttl_s, "override": None}


def _handler(server: ContractServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # one answer per connection (HTTP/1.0)
            with server.cond:
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
            try:
                self._answer()
            finally:
                with server.cond:
                    server.in_flight -= 1

        def _answer(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            server.queries.append(query)
            server.auth.append(self.headers.get("Authorization"))
            if url.path != "/api/v1/degradation":
                return self._send("404", 404, {"error": "not found"})
            if server.mode == "hang":
                server.hits["hang"] += 1
                server.closing.wait(10)
                return None
            if server.mode == "500":
                return self._send("500", 500, {"error": "database unavailable"})
            if server.mode == "bad_json":
                return self._send("bad_json", 200, b"<html>proxy error</html>")
            if query.get("scope", ["team=checkout"])[0] != "team=checkout":
                return self._send("404", 404, {"error": f"unknown scope {query['scope'][0]!r}"})
            after = int(query["after"][0]) if "after" in query else None
            wait_s = min(float(query["wait"][0]), 60.0) if "wait" in query else 0.0
            with server.cond:
                if after is not None and wait_s > 0:
                    server.cond.wait_for(lambda: server.version != after or server.closing.is_set(), wait_s)
                    if server.version == after:
                        return self._send("poll_304", 304, None)
                    return self._send("poll_200", 200, server.document())
                if self.headers.get("If-None-Match") == f'"{server.version}"':
                    return self._send("304", 304, None)
                return self._send("200", 200, server.document())

        def _send(self, kind: str, status: int, body: dict | bytes | None) -> None:
            server.hits[kind] += 1
            data = json.dumps(body).encode() if isinstance(body, dict) else body or b""
            self.send_response(status)
            if status in (200, 304) and kind not in ("bad_json",):
                self.send_header("ETag", f'"{server.version}"')
                self.send_header("X-Degradation-Level", server.level)
            if status != 304:
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if status != 304:
                self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server():
    contract = ContractServer()
    contract.start()
    yield contract
    contract.stop()


@pytest.fixture
def make_client(server: ContractServer):
    """Builds clients against ``server`` (short timeout, seeded jitter) and closes them before it stops."""
    clients: list[Degradation] = []

    def make(**kwargs) -> Degradation:
        kwargs = {"timeout_s": 1.0, "rng": random.Random(7)} | kwargs
        client = Degradation(kwargs.pop("base_url", server.url), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_first_read_fetches_once_with_scope_and_token(server, make_client) -> None:
    client = make_client(scope="team=checkout", token="s3cret", clock=FakeClock())
    assert server.requests() == 0  # constructing sends nothing
    assert client.level == "normal" and client.version == 1 and not client.stale
    assert client.reasons == ("normal: test",) and client.value("background_tasks") is True
    assert server.hits == Counter({"200": 1})
    assert server.queries[0]["scope"] == ["team=checkout"] and server.auth[0] == "Bearer s3cret"
    snap = client.snapshot()
    assert isinstance(snap, Snapshot) and snap.fetched_at == FakeClock().now()
    with pytest.raises(TypeError):
        snap.features["analytics"] = False  # read-only
    features = client.features
    features["analytics"] = False  # a copy: the client is unaffected
    assert client.enabled("analytics") and server.hits == Counter({"200": 1})


def test_reads_within_the_ttl_use_the_cache(server, make_client) -> None:
    clock = FakeClock()
    client = make_client(clock=clock)
    assert client.enabled("analytics")
    server.publish("degraded")
    for _ in range(50):
        assert client.enabled("analytics") and client.level == "normal"
        clock.advance((TTL_S - 0.5) / 50)
    assert server.requests() == 1
    clock.advance(0.5)  # the answer is now ttl_s old: the next read revalidates, once
    assert client.level == "degraded" and not client.enabled("analytics")
    assert client.value("background_tasks") == "reduced" and client.value("nope", 3) == 3
    assert server.hits == Counter({"200": 2})
    assert server.auth == [None, None]  # no token given: no Authorization header


def test_one_full_body_per_version_then_304s(server, make_client) -> None:
    clock = FakeClock()
    client = make_client(clock=clock)
    changes = []
    for level in ("normal", "degraded", "minimal"):
        if level != "normal":
            server.publish(level)
        for _ in range(4):
            changes.append(client.refresh())
            for _ in range(10):
                assert client.level == level  # within the ttl: no request
            clock.advance(TTL_S)  # the next read revalidates with If-None-Match
            assert client.level == level
    assert changes == [True, False, False, False] * 3
    assert server.hits["200"] == 3 and server.full_bodies() == 3
    assert server.hits["304"] == server.requests() - 3 == 21  # 3 versions x (4 refresh + 4 reads) - 3 bodies
    assert client.version == 3 and client.features == FEATURES["minimal"]


def test_watch_sees_a_change_promptly_by_long_poll(server, make_client) -> None:
    client = make_client(watch=True)
    poll(lambda: client.snapshot().version == 1, 5)
    poll(lambda: server.in_flight == 1, 5)  # the long-poll is held on the server
    started = time.monotonic()
    server.publish("emergency")
    poll(lambda: client.snapshot().level == "emergency", 5)
    assert time.monotonic() - started < 1.0
    assert client.value("caching") == "serve_stale" and not client.enabled("analytics") and not client.stale
    assert server.hits["200"] == 1 and server.hits["poll_200"] == 1  # reads never asked by ttl
    held = [q for q in server.queries if "after" in q]
    assert held[0]["after"] == ["1"] and held[0]["wait"] == ["30"]


def test_close_stops_the_watch_thread(server, make_client) -> None:
    with make_client(watch=True) as client:
        poll(lambda: client.snapshot().version == 1 and server.in_flight == 1, 5)
        assert client.watching
    assert not client.watching
    server.publish("minimal")  # answers the long-poll in flight; the thread then stops
    poll(lambda: not client._thread.is_alive(), 5)
    requests_after_close = server.requests()
    time.sleep(0.2)
    assert server.requests() == requests_after_close


def test_fail_static_when_the_server_stops(server, make_client) -> None:
    clock = FakeClock()
    client = make_client(clock=clock)
    server.publish("degraded")
    assert client.level == "degraded"
    server.stop()
    clock.advance(TTL_S)
    snap = client.snapshot()  # one refused connection: no exception
    assert (snap.level, snap.version, dict(snap.features)) == ("degraded", 2, FEATURES["degraded"])
    assert snap.stale and client.stale and "ConnectionError" in client.last_error
    assert client.level == "degraded" and client.enabled("caching") and not client.enabled("analytics")


def test_fallback_before_any_answer(server, make_client) -> None:
    server.stop()
    client = make_client(clock=FakeClock(), fallback_level="minimal", fallback_features={"caching": True})
    assert client.level == "minimal" and client.version is None and client.stale
    assert client.enabled("caching") and not client.enabled("analytics")
    assert client.enabled("analytics", default=True) and client.value("analytics", "off") == "off"
    plain = make_client(clock=FakeClock())
    assert plain.level == "normal" and plain.features == {} and plain.enabled("analytics", True)
    assert plain.last_error


def test_unknown_scope_is_an_error_with_the_servers_reason(server, make_client) -> None:
    client = make_client(scope="team=nope", clock=FakeClock(), fallback_level="degraded")
    assert client.level == "degraded" and client.stale
    assert server.hits == Counter({"404": 1})
    assert "HTTP 404" in client.last_error and "unknown scope" in client.last_error


@pytest.mark.parametrize("mode", ["500", "bad_json", "hang"])
def test_errors_keep_the_last_known_answer(server, make_client, mode) -> None:
    clock = FakeClock()
    client = make_client(clock=clock, timeout_s=0.3)
    assert client.level == "normal"
    server.mode = mode
    server.publish("emergency")
    clock.advance(TTL_S)
    started = time.monotonic()
    assert client.level == "normal" and client.enabled("analytics")  # no exception, the last known
    assert time.monotonic() - started < 2.0  # a hanging server costs one timeout
    assert client.stale and server.hits[mode] == 1
    expected = {"500": "HTTP 500: database unavailable", "bad_json": "JSONDecodeError", "hang": "Timeout"}[mode]
    assert expected in client.last_error
    server.mode = "ok"
    clock.advance(exponential_delay(1, RETRY_BASE_S, RETRY_CAP_S))  # past the first backoff
    assert client.level == "emergency" and not client.stale and client.last_error is None


def test_breaker_opens_after_consecutive_failures_and_sends_nothing_while_open(server, make_client) -> None:
    clock = FakeClock()
    client = make_client(clock=clock)
    assert client.level == "normal"
    server.mode = "500"
    clock.advance(TTL_S)
    for failure in range(1, FAILURE_THRESHOLD + 1):
        assert client.level == "normal" and server.hits["500"] == failure
        assert client.breaker_state == ("open" if failure == FAILURE_THRESHOLD else "closed")
        ceiling = exponential_delay(failure, RETRY_BASE_S, RETRY_CAP_S)
        for _ in range(20):  # before half the ceiling the jittered backoff never allows a try
            clock.advance(ceiling / 2 / 21)
            assert client.level == "normal" and not client.refresh()
        assert server.hits["500"] == failure
        clock.advance(ceiling / 2 + ceiling / 21)  # past the ceiling: the next read tries
    assert client.breaker_state == "open" and server.requests() == 1 + FAILURE_THRESHOLD
    assert client.level == "normal"  # the half-open trial; it fails and the breaker opens again
    assert server.hits["500"] == FAILURE_THRESHOLD + 1 and client.breaker_state == "open"
    assert client.stale and client.level == "normal"


def test_breaker_closes_when_the_server_returns(server, make_client) -> None:
    clock = FakeClock()
    client = make_client(clock=clock)
    assert client.level == "normal"
    server.stop()
    clock.advance(TTL_S)
    for failure in range(1, FAILURE_THRESHOLD + 1):
        assert client.level == "normal"
        clock.advance(exponential_delay(failure, RETRY_BASE_S, RETRY_CAP_S))
    assert client.breaker_state == "open" and client.stale
    server.publish("minimal")
    server.start()  # the same port
    assert client.level == "minimal"  # the half-open trial succeeds and closes the breaker
    assert client.breaker_state == "closed" and not client.stale and client.last_error is None
    assert server.hits == Counter({"200": 2})  # the first read, and the trial


def test_watch_backs_off_while_the_server_fails_then_recovers(server, make_client) -> None:
    server.mode = "500"
    client = make_client(watch=True, fallback_level="degraded")
    poll(lambda: server.hits["500"] >= 1, 5)
    time.sleep(1.4)  # measures the request rate: a hot loop would send hundreds
    assert server.hits["500"] <= 3
    assert client.level == "degraded" and client.stale
    server.mode = "ok"
    poll(lambda: not client.stale, 10)  # the next jittered try succeeds
    assert client.level == "normal" and client.breaker_state == "closed"


def test_long_poll_answered_at_once_does_not_loop_hot(server, make_client) -> None:
    server.ttl_s = 1
    client = make_client(watch=True)
    poll(lambda: client.snapshot().version == 1, 5)
    with server.cond:  # a busy server: long-polls are answered at once, unchanged
        server.closing.set()
        server.cond.notify_all()
    poll(lambda: server.hits["poll_304"] >= 1, 5)
    time.sleep(0.5)  # measures the request rate: a hot loop would send hundreds
    assert server.hits["poll_304"] <= 2 and client.snapshot().version == 1 and not client.stale


def test_readers_see_one_version_at_a_time(server, make_client) -> None:
    server.ttl_s = 0  # every read revalidates: readers race for the one request in flight
    client = make_client()
    seen: list[tuple[int | None, str, dict]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            snap = client.snapshot()
            seen.append((snap.version, snap.level, dict(snap.features)))

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        for level in ("degraded", "minimal", "emergency", "normal", "degraded") * 3:
            version = server.publish(level)
            poll(lambda version=version: client.snapshot().version == version, 5, interval_s=0.005)
    finally:
        done.set()
        for thread in readers:
            thread.join(5)
    observed = {(v, lvl) for v, lvl, _ in seen if v is not None}
    assert len(observed) >= 10  # the readers saw the changes
    for version, level, features in seen:
        if version is None:
            assert (level, features) == ("normal", {})  # the fallback, before the first answer
        else:
            assert level == server.history[version] and features == FEATURES[level]
    assert server.max_in_flight == 1  # one request at a time, whatever the number of readers


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"base_url": "ftp://orchestrator:8765"}, "base_url"),
    ({"base_url": "orchestrator:8765"}, "base_url"),
    ({"base_url": "http://"}, "base_url"),
    ({"base_url": None}, "base_url"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"timeout_s": -1.5}, "timeout_s"),
    ({"timeout_s": "5"}, "timeout_s"),
    ({"fallback_level": "loud"}, "fallback_level"),
    ({"fallback_features": ["analytics"]}, "fallback_features"),
], ids=lambda v: repr(v) if not isinstance(v, str) else v)
def test_bad_arguments_raise_value_error_naming_them(kwargs, argument) -> None:
    kwargs = {"base_url": "http://127.0.0.1:1"} | kwargs
    with pytest.raises(ValueError, match=f"^{argument}:"):
        Degradation(kwargs.pop("base_url"), **kwargs)
