"""Checkers against real loopback servers that misbehave on purpose (invariant 5: bounded)."""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait

import pytest

from orchestrator import __version__
from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import MAX_BODY_BYTES, CheckSpec
from orchestrator.core.errors import InputError
from orchestrator.health.checkers import CommandChecker, HttpChecker, TcpChecker, get_checker
from orchestrator.health.checkers.base import Attempt, Checker
from tests.servers import OK_BODY, LoopbackHTTPServer, TlsLoopbackServer, wait_for

#: Slack allowed past a deadline: thread wake-ups on a busy 2-core machine, never a measurement.
MARGIN_S = 1.5


@pytest.fixture
def server() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer() as srv:
        yield srv


@pytest.fixture
def checker() -> Iterator[HttpChecker]:
    chk = HttpChecker()
    yield chk
    chk.close()


def timed(fn, *args, **kwargs) -> tuple[CheckResult, float]:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - started


def test_healthy_endpoint(server: LoopbackHTTPServer, checker: HttpChecker) -> None:
    result = checker.check(CheckSpec(url=server.url, json_conditions=['$.status == "UP"']), timeout_s=2)
    assert result.ok and result.error is None
    assert result.status_code == 200 and result.bytes_read == len(OK_BODY)
    assert server.last_request is not None
    assert server.last_request[2]["User-Agent"] == f"orchestrator-healthcheck/{__version__}"


@pytest.mark.parametrize(
    "mode, spec, error",
    [
        ("500", {}, "status 500 not in 200-299"),
        ("ok", {"expect_status": ["500", "502-504"]}, "status 200 not in 500, 502-504"),
        ("ok", {"body_contains": "nope"}, "body does not contain 'nope'"),
        ("json_down", {"json_conditions": ['$.status == "UP"']}, '$.status is "DOWN", expected "UP"'),
        ("ok", {"json_conditions": ['$.checks[0].name == "cache"']}, '$.checks[0].name is "db", expected "cache"'),
        ("ok", {"json_conditions": ['$.checks[0].ok == 1']}, "$.checks[0].ok is true, expected 1"),
        ("ok", {"json_conditions": ['$.status != "UP"']}, '$.status is "UP", expected not "UP"'),
        ("ok", {"json_conditions": ["$.checks[3].ok == true"]}, "$.checks[3].ok is missing"),
        ("invalid_json", {"json_conditions": ['$.status == "UP"']}, "invalid JSON body"),
        ("invalid_utf8", {"json_conditions": ['$.status == "UP"']}, "invalid JSON body"),
        ("redirect_loop", {}, "too many redirects (3)"),
        ("close_mid_response", {}, "connection closed mid-response"),
    ],
    ids=["500", "expected-5xx", "body-missing-text", "json-down", "json-index", "json-bool-is-not-1",
         "json-not-equal", "json-missing-path", "invalid-json", "invalid-utf8-json", "redirect-loop",
         "closed-mid-response"],  # fmt: skip
)
def test_unhealthy_answers(server: LoopbackHTTPServer, checker: HttpChecker, mode: str, spec: dict, error: str) -> None:
    server.set_mode(mode)
    result = checker.check(CheckSpec(url=server.url, **spec), timeout_s=5)
    assert not result.ok
    assert result.error == error


@pytest.mark.parametrize(
    "mode, spec",
    [
        ("ok", {"json_conditions": ['$.status == "UP"', "$.checks[0].ok == true", '$.status != "DOWN"']}),
        ("ok", {"method": "HEAD"}),
        ("invalid_utf8", {"body_contains": "all ok"}),
        ("500", {"expect_status": ["500"]}),
    ],
    ids=["json-conditions", "head", "invalid-utf8-text", "expected-500"],
)
def test_healthy_answers(server: LoopbackHTTPServer, checker: HttpChecker, mode: str, spec: dict) -> None:
    server.set_mode(mode)
    result = checker.check(CheckSpec(url=server.url, **spec), timeout_s=5)
    assert result.ok, result.error


def test_method_and_headers_are_sent(server: LoopbackHTTPServer, checker: HttpChecker) -> None:
    spec = CheckSpec(url=server.url, method="POST", headers={"X-Probe": "yes"})
    assert checker.check(spec, timeout_s=5).ok
    assert server.last_request is not None
    method, _path, headers = server.last_request
    assert method == "POST" and headers["X-Probe"] == "yes"


def test_one_redirect_is_followed(server: LoopbackHTTPServer, checker: HttpChecker) -> None:
    server.set_mode("redirect_once")
    result = checker.check(CheckSpec(url=server.url), timeout_s=5)
    assert result.ok and result.details["redirects"] == 1
    assert server.hits == 2


def test_redirect_loop_stops_after_max_redirects(server: LoopbackHTTPServer, checker: HttpChecker) -> None:
    server.set_mode("redirect_loop")
    result = checker.check(CheckSpec(url=server.url, max_redirects=2), timeout_s=5)
    assert result.error == "too many redirects (2)"
    assert server.hits == 3  # the first request and two followed redirects


def test_hanging_endpoint_fails_at_the_timeout(server: LoopbackHTTPServer, checker: HttpChecker) -> None:
    server.set_mode("hang")
    result, elapsed = timed(checker.check, CheckSpec(url=server.url), timeout_s=1.0)
    assert result.error == "timeout after 1s"
    assert elapsed < 1.0 + MARGIN_S


@pytest.mark.parametrize("mode", ["trickle_body", "trickle_headers"])
def test_trickling_server_cannot_stretch_the_total_deadline(
    server: LoopbackHTTPServer, checker: HttpChecker, mode: str
) -> None:
    # One byte every 0.2 s never trips a per-read socket timeout; only the total deadline stops it.
    server.set_mode(mode)
    result, elapsed = timed(checker.check, CheckSpec(url=server.url), timeout_s=1.0)
    assert result.error == "timeout after 1s"
    assert elapsed < 1.0 + MARGIN_S
    assert server.bytes_sent > 0  # it really was trickling when the deadline cut it


def test_stalled_tls_handshake_is_bounded(checker: HttpChecker) -> None:
    # A listening socket nobody accepts from: the kernel completes TCP, TLS never answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"https://127.0.0.1:{silent.getsockname()[1]}/health"
        result, elapsed = timed(checker.check, CheckSpec(url=url), timeout_s=1.0)
    assert result.error == "timeout after 1s"
    assert elapsed < 1.0 + MARGIN_S


def test_huge_body_reads_at_most_the_cap(server: LoopbackHTTPServer, checker: HttpChecker) -> None:
    server.set_mode("huge")  # announces and streams 1 GiB
    result, elapsed = timed(checker.check, CheckSpec(url=server.url, body_contains="0"), timeout_s=10)
    assert result.ok and result.bytes_read == MAX_BODY_BYTES
    assert result.details["truncated"] is True
    assert elapsed < 5
    # The connection was closed, not drained: the server's writes fail soon after.
    assert wait_for(lambda: server.active == 0, timeout_s=5)
    assert server.bytes_sent < 64 * 1024 * 1024
    # ...and that connection was not put back in the pool.
    server.set_mode("ok")
    assert checker.check(CheckSpec(url=server.url), timeout_s=5).ok
    assert server.connections == 2


def test_max_latency(server: LoopbackHTTPServer, checker: HttpChecker) -> None:
    server.slow_delay_s = 0.3
    server.set_mode("slow")
    slow = checker.check(CheckSpec(url=server.url, max_latency_ms=100), timeout_s=5)
    assert slow.error is not None and re.fullmatch(r"latency \d+ ms > max 100 ms", slow.error)
    assert checker.check(CheckSpec(url=server.url, max_latency_ms=5000), timeout_s=5).ok


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_self_signed_certificate(checker: HttpChecker) -> None:
    with TlsLoopbackServer() as tls:
        assert checker.check(CheckSpec(url=tls.url), timeout_s=5).error == "TLS certificate verify failed: self-signed certificate"
        insecure = checker.check(CheckSpec(url=tls.url, verify_tls=False), timeout_s=5)
        assert insecure.ok and insecure.status_code == 200


def test_crash_gives_connection_refused_and_restart_recovers(
    server: LoopbackHTTPServer, checker: HttpChecker
) -> None:
    assert checker.check(CheckSpec(url=server.url), timeout_s=5).ok  # leaves a kept-alive connection
    server.crash()
    assert checker.check(CheckSpec(url=server.url), timeout_s=5).error == "connection refused"
    server.restart()
    assert checker.check(CheckSpec(url=server.url), timeout_s=5).ok


def test_connections_are_reused_and_old_deadlines_never_cut_them(
    server: LoopbackHTTPServer, checker: HttpChecker
) -> None:
    # Back-to-back checks on one kept-alive connection for longer than each check's deadline:
    # a deadline that fired after its check ended would cut the connection under a later check.
    # (a 1 s deadline: with 0.2 s one check starved of CPU on a busy machine timed out on its own)
    spec = CheckSpec(url=server.url)
    end = time.monotonic() + 2.5
    results = []
    while time.monotonic() < end:
        results.append(checker.check(spec, timeout_s=1.0))
    assert all(r.ok for r in results), {r.error for r in results}
    assert server.connections == 1


def test_hanging_endpoints_do_not_delay_other_checks(checker: HttpChecker) -> None:
    with LoopbackHTTPServer("hang") as hanging, LoopbackHTTPServer() as healthy, ThreadPoolExecutor(25) as pool:
        hangs = [pool.submit(checker.check, CheckSpec(url=hanging.url), timeout_s=3.0) for _ in range(5)]
        assert wait_for(lambda: hanging.active == 5, timeout_s=3)
        started = time.monotonic()
        goods = [pool.submit(checker.check, CheckSpec(url=healthy.url), timeout_s=3.0) for _ in range(20)]
        done, _ = wait(goods, timeout=2.0)
        elapsed = time.monotonic() - started
        assert len(done) == 20 and all(f.result().ok for f in goods)
        assert not any(f.done() for f in hangs)  # the hangs were in progress all along
        assert elapsed < 2.0
        assert all(f.result().error == "timeout after 3s" for f in hangs)


def test_check_never_raises() -> None:
    class Broken(Checker):
        kind = "broken"

        def _check(self, spec: CheckSpec, attempt: Attempt) -> CheckResult:
            raise RuntimeError("boom")

    result = Broken().check(CheckSpec(url="http://127.0.0.1:1/"), timeout_s=1)
    assert not result.ok and result.error == "checker error: RuntimeError: boom"
    wrong_kind = HttpChecker().check(CheckSpec(kind="tcp", host="127.0.0.1", port=1), timeout_s=1)
    assert wrong_kind.error == "no url to check"


def test_get_checker_shares_instances_and_names_the_known_kinds() -> None:
    assert get_checker("http") is get_checker("http")
    assert isinstance(get_checker("tcp"), TcpChecker) and isinstance(get_checker("command"), CommandChecker)
    with pytest.raises(InputError, match="known: command, http, push, tcp"):
        get_checker("smtp")


# -- tcp ---------------------------------------------------------------------------------------


def test_tcp_check(server: LoopbackHTTPServer) -> None:
    tcp = TcpChecker()
    assert tcp.check(CheckSpec(kind="tcp", host="127.0.0.1", port=server.port), timeout_s=2).ok
    assert tcp.check(CheckSpec(kind="tcp", url=f"tcp://127.0.0.1:{server.port}"), timeout_s=2).ok
    assert tcp.check(CheckSpec(kind="tcp", url=f"127.0.0.1:{server.port}"), timeout_s=2).ok
    server.crash()
    refused = tcp.check(CheckSpec(kind="tcp", host="127.0.0.1", port=server.port), timeout_s=2)
    assert refused.error == "connection refused"
    assert tcp.check(CheckSpec(kind="tcp", url="tcp://127.0.0.1"), timeout_s=2).error == "no host and port in 'tcp://127.0.0.1'"


# -- command -------------------------------------------------------------------------------------

PY = sys.executable


@pytest.mark.parametrize(
    "argv, ok, error",
    [
        ([PY, "-c", "print('fine')"], True, None),
        ([PY, "-c", "import sys; print('\\n  disk   full \\nmore'); sys.exit(2)"], False, "exit status 2: disk full"),
        ([PY, "-c", "import sys; sys.exit(1)"], False, "exit status 1"),
        (["no-such-check-4711"], False, "executable not found: no-such-check-4711"),
    ],
    ids=["exit-0", "exit-2-with-output", "exit-1-silent", "missing"],
)
def test_command_check(argv: list[str], ok: bool, error: str | None) -> None:
    result = CommandChecker().check(CheckSpec(kind="command", command=argv), timeout_s=10)
    assert (result.ok, result.error) == (ok, error)


def test_command_check_timeout() -> None:
    spec = CheckSpec(kind="command", command=["sleep", "30"])
    result, elapsed = timed(CommandChecker().check, spec, timeout_s=0.5)
    assert result.error == "timeout after 0.5s"
    assert elapsed < 0.5 + MARGIN_S
