"""``orchestrator.client.Degradation`` against the real web server on loopback (``orchestrator web`` over a
migrated database): caching by ttl and ETag, the watch long-poll, fail-static, the breaker, thread safety."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import requests

from orchestrator.client import FAILURE_THRESHOLD, OPEN_BASE_S, Degradation
from orchestrator.core.clock import FakeClock
from orchestrator.db.engine import Database
from orchestrator.degradation import store
from orchestrator.degradation.policy import DEFAULT_POLICY
from orchestrator.web import server
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.daemon_helpers import poll


class CountingSession(requests.Session):
    """Records the status of every answer."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []

    def request(self, *args, **kwargs):
        response = super().request(*args, **kwargs)
        self.statuses.append(response.status_code)
        return response


def publish(db: Database, level: str, version: int) -> None:
    now = datetime.now(UTC)
    doc = store.document("global", level, version, now, [f"{level}: test"], DEFAULT_POLICY.features_at(level),
                         10.0, None)
    with db.write() as session:
        store.write_level(session, doc, now=now)


@pytest.fixture
def web(db: Database):
    publish(db, "normal", 1)
    running = server.start(DatabaseSource(db), "127.0.0.1:0", WebSettings())
    yield running
    running.stop()


def test_one_full_answer_per_version_then_304s(db: Database, web) -> None:
    clock, session = FakeClock(), CountingSession()
    client = Degradation(web.url, session=session, clock=clock)
    for version, level in ((1, "normal"), (2, "degraded"), (3, "minimal")):
        if version > 1:
            publish(db, level, version)
        for _ in range(3):
            clock.advance(11)  # past ttl_s: each read after it revalidates once
            assert client.level == level
            for _ in range(20):
                client.enabled("analytics")  # within the ttl: no request
    assert session.statuses.count(200) == 3
    assert session.statuses.count(304) == 6
    assert len(session.statuses) == 9
    assert client.enabled("analytics") is False and client.value("background_tasks") is False


def test_watch_sees_a_change_without_polling_by_ttl(db: Database, web) -> None:
    with Degradation(web.url, watch=True) as client:
        poll(lambda: client.version == 1, 10)
        publish(db, "emergency", 2)
        poll(lambda: client._current().level == "emergency", 10)
        assert client.snapshot().features["caching"] == "serve_stale"
        assert not client.stale


def test_fail_static_when_the_orchestrator_goes_away(db: Database, web) -> None:
    clock = FakeClock()
    client = Degradation(web.url, clock=clock, timeout_s=1)
    publish(db, "degraded", 2)
    assert client.level == "degraded"
    web.stop()
    clock.advance(11)
    assert client.level == "degraded" and client.enabled("analytics") is False  # the last known, no exception
    assert client.stale and client.last_error


def test_fallback_before_any_answer_and_bad_answers() -> None:
    hits: list[str] = []

    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Broken(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = b"<html>not json</html>" if len(hits) % 2 else b'{"level": "loud", "features": {}}'
            self.send_response(200 if len(hits) % 2 else 500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        clock = FakeClock()
        client = Degradation(f"http://127.0.0.1:{httpd.server_address[1]}", clock=clock,
                             fallback_level="degraded", fallback_features={"analytics": False, "caching": True})
        for _ in range(2):
            assert client.level == "degraded" and client.enabled("caching") and not client.enabled("analytics")
            clock.advance(1)
        assert client.stale and len(hits) == FAILURE_THRESHOLD  # then the breaker holds further tries
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_breaker_stops_requests_then_one_trial(db: Database, web) -> None:
    clock, session = FakeClock(), CountingSession()
    client = Degradation(web.url, clock=clock, session=session, timeout_s=1)
    assert client.level == "normal"
    web.stop()
    clock.advance(11)
    for _ in range(20):
        assert client.level == "normal"  # served from the cache, stale
    assert client.requests == 1 + FAILURE_THRESHOLD  # then the breaker is open: no more requests
    assert "circuit open" in client.last_error
    clock.advance(OPEN_BASE_S + 0.1)
    assert client.level == "normal" and client.requests == 2 + FAILURE_THRESHOLD  # one trial; it fails
    clock.advance(OPEN_BASE_S + 0.1)
    assert client.level == "normal" and client.requests == 2 + FAILURE_THRESHOLD  # the period doubled
    again = server.start(DatabaseSource(db), f"127.0.0.1:{web.port}", WebSettings())
    try:
        publish(db, "minimal", 5)
        clock.advance(OPEN_BASE_S)  # past the doubled period: one trial, which succeeds and closes it
        assert client.level == "minimal" and not client.stale and client.last_error is None
    finally:
        again.stop()


def test_readers_see_one_version_at_a_time(db: Database, web) -> None:
    client = Degradation(web.url, watch=True)
    poll(lambda: client._current().version == 1, 10)  # before that, the fallback (no features) is served
    seen: list[tuple[str, object]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            snap = client.snapshot()
            seen.append((snap.level, snap.features.get("analytics")))
            time.sleep(0.001)  # readers share the interpreter with the watch thread

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in readers:
        t.start()
    try:
        for version, level in enumerate(("degraded", "normal", "minimal", "normal"), start=2):
            publish(db, level, version)
            poll(lambda level=level: client._current().level == level, 10)
    finally:
        done.set()
        for t in readers:
            t.join(5)
        client.close()
    expected = {lvl: DEFAULT_POLICY.features_at(lvl)["analytics"] for lvl in ("normal", "degraded", "minimal")}
    assert seen and all(analytics == expected[level] for level, analytics in seen)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"base_url": "ftp://x"}, "base_url"),
    ({"base_url": "http://127.0.0.1:1", "timeout_s": 0}, "timeout_s"),
    ({"base_url": "http://127.0.0.1:1", "fallback_level": "loud"}, "fallback_level"),
])
def test_bad_arguments_name_themselves(kwargs, field) -> None:
    with pytest.raises(ValueError, match=field):
        Degradation(**kwargs)
