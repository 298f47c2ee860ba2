"""Slow clients cannot starve the web server: 300 connections trickling partial headers (slowloris,
reconnecting when dropped) against the real daemon's server, while /healthz is asked 10 times and the
daemon's checks go on. Latencies and the checks' count are printed, not asserted on."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from orchestrator.db.models import Component
from orchestrator.web import frontdoor
from orchestrator.web.state import WebSettings
from tests.daemon_helpers import poll
from tests.test_web_api import daemon_serving_shop

SLOW_CLIENTS = 300
PROBES = 10
#: how long one probe may take before it counts as not answered (generous: the machine is shared)
PROBE_DEADLINE_S = 8.0
#: probes are spaced like a liveness probe's, over a window long enough for the slow clients to churn
PROBE_SPACING_S = 2.0


@contextmanager
def slowloris(host: str, port: int, count: int) -> Iterator[dict[str, int]]:
    """``count`` connections that send a request line and then one header line a second, forever;
    a connection the server drops is opened again. Yields counters (opened, dropped)."""
    stop = threading.Event()
    counters = {"opened": 0, "dropped": 0}

    def connect() -> socket.socket | None:
        try:
            sock = socket.create_connection((host, port), timeout=2)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            sock.setblocking(False)
            counters["opened"] += 1
            return sock
        except OSError:
            return None

    def run() -> None:
        sockets = [connect() for _ in range(count)]
        while not stop.wait(1.0):
            for i, sock in enumerate(sockets):
                try:
                    if sock is None:
                        raise OSError("not connected")
                    sock.send(b"X-Slow: 1\r\n")
                except OSError:
                    if sock is not None:
                        counters["dropped"] += 1
                        sock.close()
                    sockets[i] = connect()
        for sock in sockets:
            if sock is not None:
                sock.close()

    thread = threading.Thread(target=run, name="slowloris", daemon=True)
    thread.start()
    try:
        poll(lambda: counters["opened"] >= count, 60)
        yield counters
    finally:
        stop.set()
        thread.join(30)


def _checks(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(Component.checks_total).where(Component.name == "shop")) or 0


@pytest.mark.slow
def test_healthz_is_answered_through_300_slow_connections_and_checks_keep_their_cadence(tmp_path) -> None:
    with daemon_serving_shop(tmp_path, WebSettings()) as (daemon, database):
        host, port, url = daemon.web.host, daemon.web.port, daemon.web.url + "healthz"
        poll(lambda: _checks(database) > 0, 20)
        with slowloris(host, port, SLOW_CLIENTS) as counters:
            checks_before, started = _checks(database), time.monotonic()
            answered, latencies, pace = 0, [], threading.Event()
            for _ in range(PROBES):
                pace.wait(PROBE_SPACING_S)  # pacing, not waiting for a state
                began = time.monotonic()
                try:
                    with urllib.request.urlopen(url, timeout=PROBE_DEADLINE_S) as response:
                        answered += response.status == 200
                        latencies.append(time.monotonic() - began)
                except OSError as exc:
                    print(f"probe not answered: {exc}")
            window_s = time.monotonic() - started
            checks = _checks(database) - checks_before
        print(f"healthz {answered}/{PROBES} answered, latency max {max(latencies, default=0):.3f}s "
              f"mean {sum(latencies) / max(1, len(latencies)):.3f}s; slow connections opened "
              f"{counters['opened']}, dropped by the server {counters['dropped']}; "
              f"{checks} checks in {window_s:.1f}s at a 0.5s interval")
        assert answered == PROBES
        assert checks >= window_s / 0.5 / 4  # the checks went on (a loose bound: the machine is shared)


def test_a_request_that_trickles_past_its_deadline_is_closed(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(frontdoor, "REQUEST_TIMEOUT_S", 1.0)
    db_url = f"sqlite:///{tmp_path / 'o.db'}"
    database = Database(db_url)
    ensure_schema(database)
    from orchestrator.web import server
    from orchestrator.web.source import DatabaseSource

    web = server.start(DatabaseSource(database), "127.0.0.1:0", WebSettings())
    try:
        sock = socket.create_connection((web.host, web.port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

        def closed() -> bool:
            try:
                sock.sendall(b"X-Slow: 1\r\n")  # keeps it active: only the request deadline can close it
                sock.settimeout(0.5)
                return sock.recv(1) == b""
            except TimeoutError:
                return False
            except OSError:
                return True

        poll(closed, 20, interval_s=0.3)
        sock.close()
    finally:
        web.stop()
        database.dispose()
