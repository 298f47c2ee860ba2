"""`orchestrator run` as a real process: SIGTERM, SIGHUP, the single-instance lock, sd_notify."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

from tests.daemon_helpers import poll, spawn
from tests.servers import LoopbackHTTPServer


def _setup(home, url: str, plans: str | None = None) -> None:
    env_home = {"ORCHESTRATOR_HOME": str(home)}
    import os

    args = [sys.executable, "-m", "orchestrator", "component", "add", "api", "--url", url, "--interval", "3s",
            "--timeout", "2s", "--retry-interval", "100ms"]
    subprocess.run(args, check=True, env={**os.environ, **env_home}, capture_output=True, timeout=60)


def _wait_line(proc: subprocess.Popen[str], text: str, timeout_s: float = 20) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if text in line:
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"{text!r} not logged")


def test_sigterm_with_a_hanging_check_in_flight_exits_0_within_10s(tmp_path) -> None:
    with LoopbackHTTPServer() as server:
        server.set_mode("hang")
        _setup(tmp_path, server.url)
        proc = spawn(["run"], tmp_path)
        try:
            _wait_line(proc, "started instance=")
            poll(lambda: server.hits >= 1)  # a check is now hanging in flight
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert time.monotonic() - began < 10
            assert "stopped instance=" in proc.stderr.read()
        finally:
            proc.kill()


def test_second_daemon_on_same_sqlite_file_exits_1(tmp_path) -> None:
    with LoopbackHTTPServer() as server:
        _setup(tmp_path, server.url)
        first = spawn(["run"], tmp_path)
        try:
            _wait_line(first, "started instance=")
            second = spawn(["run"], tmp_path)
            out, err = second.communicate(timeout=30)
            assert second.returncode == 1
            assert "already running" in err and "Traceback" not in err
            assert len(err.strip().splitlines()) == 1
        finally:
            first.send_signal(signal.SIGTERM)
            first.wait(10)


def test_sighup_refuses_an_invalid_plan_file_and_keeps_running(tmp_path) -> None:
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"version": 1, "plans": {"web": {"steps": [{"strategy": "wait"}]}}}))
    with LoopbackHTTPServer() as server:
        _setup(tmp_path, server.url)
        proc = spawn(["--plans", str(plans), "run"], tmp_path)
        try:
            _wait_line(proc, "started instance=")
            plans.write_text("{ not json")
            proc.send_signal(signal.SIGHUP)
            _wait_line(proc, "reload refused")
            assert proc.poll() is None
            plans.write_text(json.dumps({"version": 1, "plans": {"db": {"steps": [{"strategy": "wait"}]}}}))
            proc.send_signal(signal.SIGHUP)
            _wait_line(proc, "reloaded plans")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0


def test_sd_notify_ready_and_watchdog(tmp_path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(20)
    with LoopbackHTTPServer() as server:
        _setup(tmp_path, server.url)
        proc = spawn(["run"], tmp_path, env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"})
        try:
            messages = []
            # both arrive (a recv timeout fails the test); the watchdog timer starts just before READY=1 is
            # sent, so on a loaded machine its first ping may come first: systemd accepts either order
            while not (any("WATCHDOG=1" in m for m in messages) and any(m.startswith("READY=1") for m in messages)):
                messages.append(sock.recv(4096).decode())
            proc.send_signal(signal.SIGTERM)
            while "STOPPING=1" not in messages[-1]:
                messages.append(sock.recv(4096).decode())
            assert proc.wait(10) == 0
        finally:
            proc.kill()
            sock.close()


def test_invalid_plan_file_stops_the_start(tmp_path) -> None:
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"version": 1, "plans": {"web": {"steps": [{"strategy": "nope"}]}}}))
    proc = spawn(["--plans", str(plans), "run"], tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "plans.web.steps[0].strategy" in err and "Traceback" not in err


def test_json_log_format_is_one_object_per_line(tmp_path) -> None:
    with LoopbackHTTPServer() as server:
        _setup(tmp_path, server.url)
        proc = spawn(["run", "--log-format", "json", "--for", "2s"], tmp_path)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    records = [json.loads(line) for line in err.strip().splitlines()]
    assert {"ts", "level", "logger", "msg"} <= set(records[0])
    assert any("component=api" in r["msg"] for r in records)


def test_second_daemon_on_same_postgresql_database_exits_1(pg_schema_url: str, tmp_path) -> None:
    from tests.daemon_helpers import running_daemon

    with running_daemon(pg_schema_url, workers=2):
        second = spawn(["--db", pg_schema_url, "run"], tmp_path)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert "already running" in err and len(err.strip().splitlines()) == 1
    # the lock dies with its holder: a new daemon starts fine afterwards
    third = spawn(["--db", pg_schema_url, "run", "--for", "1s"], tmp_path)
    assert third.wait(60) == 0


def test_sigterm_while_overloaded_drops_queued_checks_and_exits_within_10s(tmp_path) -> None:
    """20 hanging checks on 2 workers: a queue builds up. Queued checks never started, so they are
    dropped at stop; only the two running ones are waited for."""
    import os

    with LoopbackHTTPServer() as server:
        server.set_mode("hang")
        doc = {"components": [{"name": f"c{i:02d}", "url": server.url, "interval": "3s", "timeout": "2s"}
                              for i in range(20)]}
        (tmp_path / "c.json").write_text(json.dumps(doc))
        subprocess.run([sys.executable, "-m", "orchestrator", "apply", "-f", str(tmp_path / "c.json")], check=True,
                       env={**os.environ, "ORCHESTRATOR_HOME": str(tmp_path)}, capture_output=True, timeout=60)
        proc = spawn(["run", "--workers", "2"], tmp_path)
        try:
            _wait_line(proc, "started instance=")
            poll(lambda: server.hits >= 4)  # both workers busy for a while: the rest is queued
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert time.monotonic() - began < 10
        finally:
            proc.kill()
