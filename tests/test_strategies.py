"""Each built-in strategy against stub executables on PATH and real loopback HTTP servers."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.clock import FakeClock
from orchestrator.core.errors import StrategyError
from orchestrator.strategy import (
    MAX_OUTPUT_CHARS,
    AttemptStatus,
    ComponentView,
    StepResult,
    StrategyContext,
    StrategyFailure,
    VerifyMode,
    load_strategy,
    render,
)
from orchestrator.testing import make_context

EVIL_NAME = "web;rm -rf /"
EVIL_VAR = "$(reboot) `id` | tee /etc/passwd && x"


@dataclass
class Server:
    """A loopback HTTP server that records each request and answers with ``status`` and ``body``."""

    port: int
    requests: list[dict] = field(default_factory=list)
    status: int = 200
    body: bytes = b"ok"

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(port=0)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                   "body": self.rfile.read(length)})
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def stubs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """make(name, exit_code=0, output="", sleep_s=0) writes an executable that logs its argv as JSON."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "argv.log"
    monkeypatch.setenv("PATH", str(bindir))  # only stubs: a real systemctl must never run

    def make(name: str, exit_code: int = 0, output: str = "", sleep_s: float = 0) -> None:
        script = bindir / name
        script.write_text(
            f"#!{sys.executable}\nimport json, sys, time\n"
            f"open({str(log)!r}, 'a').write(json.dumps(sys.argv) + '\\n')\n"
            f"sys.stdout.write({output!r}); sys.stdout.flush()\ntime.sleep({sleep_s})\nsys.exit({exit_code})\n")
        script.chmod(0o755)

    make.calls = lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return make


def ctx(timeout_s: float = 10.0, **component: object) -> StrategyContext:
    fields = {"name": "web", "url": "http://127.0.0.1:9/health", "check": CheckSpec(url="http://127.0.0.1:9/health"),
              "vars": {"unit": "web.service"}, **component}
    return make_context(ComponentView(**fields), incident_id=7, timeout_s=timeout_s, clock=FakeClock())


def build(name: str, params: dict):
    cls = load_strategy(name)
    return cls(cls.Params.model_validate(params))


# --- restart ------------------------------------------------------------------------------------------


def test_restart_command_passes_shell_metacharacters_as_literal_argv(stubs) -> None:
    stubs("svcctl", output="restarted\n")
    step = build("restart", {"command": ["svcctl", "restart", "{component.name}", "{vars.unit}", "{incident.id}"]})
    result = step.execute(ctx(name=EVIL_NAME, vars={"unit": EVIL_VAR}))
    assert stubs.calls() == [[stubs.calls()[0][0], "restart", EVIL_NAME, EVIL_VAR, "7"]]
    assert result.outcome is AttemptStatus.SUCCEEDED and result.output == "restarted\n"
    assert step.verification is VerifyMode.CHECK and not step.idempotent


@pytest.mark.parametrize(("params", "argv"), [
    ({"preset": "systemd", "unit": "{vars.unit}"}, ["systemctl", "restart", "web.service"]),
    ({"preset": "systemd"}, ["systemctl", "restart", "web"]),
    ({"preset": "docker", "container": "{component.name}-1"}, ["docker", "restart", "web-1"]),
    ({"preset": "kubernetes", "namespace": "prod"}, ["kubectl", "rollout", "restart", "deployment/web", "-n", "prod"]),
], ids=["systemd", "systemd-default-unit", "docker", "kubernetes"])
def test_restart_presets_build_the_right_argv(stubs, params: dict, argv: list[str]) -> None:
    stubs(argv[0])
    build("restart", params).execute(ctx())
    assert stubs.calls()[0][1:] == argv[1:]
    assert build("restart", params).describe(ctx()) == "run " + json.dumps(argv)


def test_restart_nonzero_exit_is_retryable_and_keeps_redacted_output(stubs) -> None:
    stubs("svcctl", exit_code=3, output="Job failed. password=hunter2\n")
    with pytest.raises(StrategyFailure) as err:
        build("restart", {"command": ["svcctl", "restart"]}).execute(ctx())
    assert not err.value.permanent and "status 3" in str(err.value)
    assert "hunter2" not in err.value.output and "password=***" in err.value.output


def test_restart_missing_executable_is_permanent(stubs) -> None:
    with pytest.raises(StrategyError) as err:
        build("restart", {"preset": "systemd"}).execute(ctx())
    assert err.value.permanent and "systemctl" in str(err.value)


def test_restart_hanging_command_is_cut_at_the_step_deadline(stubs) -> None:
    stubs("svcctl", sleep_s=30)
    with pytest.raises(StrategyFailure, match="timed out") as err:
        build("restart", {"command": ["svcctl"]}).execute(ctx(timeout_s=0.5))
    assert not err.value.permanent


def test_missing_var_is_permanent_and_named(stubs) -> None:
    with pytest.raises(StrategyError) as err:
        build("restart", {"command": ["svcctl", "{vars.unit_name}"]}).execute(ctx())
    assert err.value.permanent and "unit_name" in str(err.value)
    assert not stubs.calls()


def test_render_keeps_each_element_whole_and_allows_literal_braces() -> None:
    assert render(["a {component.name} b", "{{x}}", "{replicas}"], ctx(name=EVIL_NAME), {"replicas": 3}) == \
        [f"a {EVIL_NAME} b", "{x}", "3"]


# --- failover -----------------------------------------------------------------------------------------


def test_failover_promotes_and_reports_the_new_active_target(stubs, server: Server) -> None:
    stubs("promote")
    step = build("failover", {"command": ["promote", "{component.name}", "{target_url}"]})
    result = step.execute(ctx(backup_url=server.url("/health")))
    assert stubs.calls()[0][1:] == ["web", server.url("/health")]
    assert result.facts == {"active_target": "backup", "from": "http://127.0.0.1:9/health",
                            "to": server.url("/health")}
    assert step.verification is VerifyMode.OWN


def test_failover_from_backup_goes_back_to_primary(stubs) -> None:
    stubs("promote")
    result = build("failover", {"command": ["promote"]}).execute(
        ctx(backup_url="http://127.0.0.1:8/", active_target="backup"))
    assert result.facts["active_target"] == "primary" and result.facts["to"] == "http://127.0.0.1:9/health"


def test_failover_verify_checks_the_backup_url(server: Server) -> None:
    step = build("failover", {"command": ["promote"]})
    context = ctx(backup_url=server.url("/ready"))
    assert step.verify(context) is True
    assert server.requests[-1]["path"] == "/ready"
    server.status = 503
    assert step.verify(context) is False


def test_failover_without_backup_is_permanent() -> None:
    with pytest.raises(StrategyError) as err:
        build("failover", {"command": ["promote"]}).execute(ctx())
    assert err.value.permanent and "no backup URL" in str(err.value)


# --- scale --------------------------------------------------------------------------------------------


def test_scale_up_sends_replicas_as_a_json_number(server: Server) -> None:
    step = build("scale_up", {"by": 2, "http": {"method": "PUT", "url": server.url("/scale/{component.name}"),
                                                "body": {"replicas": "{replicas}", "note": "from {from_replicas}"}}})
    result = step.execute(ctx(replicas=2, max_replicas=5))
    assert json.loads(server.requests[0]["body"]) == {"replicas": 4, "note": "from 2"}
    assert server.requests[0]["method"] == "PUT"
    assert result.facts == {"from_replicas": 2, "to_replicas": 4}


def test_scale_up_is_clamped_to_max_and_refused_at_max(stubs) -> None:
    stubs("scaler")
    step = build("scale_up", {"by": 3, "command": ["scaler", "{replicas}"]})
    assert step.execute(ctx(replicas=4, max_replicas=5)).facts["to_replicas"] == 5
    with pytest.raises(StrategyError, match="already at max replicas 5") as err:
        step.execute(ctx(replicas=5, max_replicas=5))
    assert err.value.permanent and stubs.calls() == [[stubs.calls()[0][0], "5"]]


def test_scale_down_stops_at_min(stubs) -> None:
    stubs("scaler")
    step = build("scale_down", {"by": 5, "command": ["scaler", "{replicas}"]})
    assert step.execute(ctx(replicas=4, min_replicas=2)).facts == {"from_replicas": 4, "to_replicas": 2}
    with pytest.raises(StrategyError, match="min replicas 1"):
        step.execute(ctx(replicas=1))


# --- rollback -----------------------------------------------------------------------------------------


def test_rollback_to_previous_version_var(stubs) -> None:
    stubs("deploy")
    result = build("rollback", {"command": ["deploy", "{component.name}", "{version}"]}).execute(
        ctx(vars={"previous_version": "1.1", "current_version": "1.2"}))
    assert stubs.calls()[0][1:] == ["web", "1.1"]
    # rolled back to the previous version: it becomes current, and no longer "previous" (None removes it)
    assert result.facts == {"from_version": "1.2", "to_version": "1.1", "previous_version": None}
    assert build("rollback", {"command": ["deploy", "{version}"]}).persists == {
        "to_version": "vars.current_version", "previous_version": "vars.previous_version"}


def test_rollback_resolver_output_picks_the_version(stubs) -> None:
    stubs("resolve", output="\n  2.0.3 \nignored\n")
    stubs("deploy")
    result = build("rollback", {"resolver": ["resolve", "{component.name}"], "command": ["deploy", "{version}"]}) \
        .execute(ctx())
    calls = stubs.calls()
    assert [c[1:] for c in calls] == [["web"], ["2.0.3"]]
    assert result.facts == {"from_version": None, "to_version": "2.0.3"}


def test_rollback_refuses_a_resolved_version_that_is_not_one_token(stubs) -> None:
    stubs("resolve", output="1.1; rm -rf /\n")
    stubs("deploy")
    with pytest.raises(StrategyError, match="unusable version") as err:
        build("rollback", {"resolver": ["resolve"], "command": ["deploy", "{version}"]}).execute(ctx())
    assert err.value.permanent and len(stubs.calls()) == 1


def test_rollback_describe_never_runs_the_resolver(stubs) -> None:
    stubs("resolve", output="9\n")
    text = build("rollback", {"resolver": ["resolve"], "command": ["deploy", "{version}"]}).describe(ctx())
    assert "resolved by resolve" in text and not stubs.calls()


# --- notify -------------------------------------------------------------------------------------------


def test_notify_through_apprise_and_a_signed_webhook(server: Server) -> None:
    step = build("notify", {"urls": [f"json://127.0.0.1:{server.port}/apprise"],
                            "webhooks": [{"url": server.url("/hook"), "secret": "s3cret"}],
                            "message": "{component.name} is down (incident {incident.id})"})
    result = step.execute(ctx())
    assert result.outcome is AttemptStatus.SUCCEEDED and result.facts == {"delivered": 2, "targets": 2}
    by_path = {r["path"]: r for r in server.requests}
    assert json.loads(by_path["/apprise"]["body"])["message"] == "web is down (incident 7)"
    hook = by_path["/hook"]
    assert json.loads(hook["body"])["body"] == "web is down (incident 7)"
    stamp, mac = hook["headers"]["X-Orchestrator-Signature"].split(",")
    expected = hmac.new(b"s3cret", stamp[2:].encode() + b"." + hook["body"], hashlib.sha256).hexdigest()
    assert stamp.startswith("t=") and mac == f"v1={expected}"
    assert step.verification is VerifyMode.NONE and not step.idempotent


def test_notify_fails_when_no_target_got_it(server: Server) -> None:
    server.status = 500
    with pytest.raises(StrategyFailure, match="no target got the message") as err:
        build("notify", {"webhooks": [{"url": server.url("/hook")}]}).execute(ctx())
    assert not err.value.permanent and "status 500" in err.value.output


# --- isolate / restore / wait / http -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "in_rotation", "mode"), [("isolate", False, VerifyMode.NONE),
                                                           ("restore", True, VerifyMode.CHECK)])
def test_isolate_and_restore_call_the_balancer(server: Server, name: str, in_rotation: bool, mode) -> None:
    step = build(name, {"http": {"url": server.url("/pools/web/members/{component.name}"), "method": "DELETE"}})
    result = step.execute(ctx(name=EVIL_NAME))
    assert server.requests[0]["path"] == "/pools/web/members/web%3Brm%20-rf%20%2F"
    assert result.facts == {"in_rotation": in_rotation}
    assert step.verification is mode and step.idempotent


def test_wait_does_nothing_and_is_verified_by_the_check() -> None:
    step = build("wait", {})
    assert step.execute(ctx()).outcome is AttemptStatus.SUCCEEDED
    assert step.verification is VerifyMode.CHECK and step.idempotent


def test_http_call_renders_headers_and_redacts_the_answer(server: Server) -> None:
    server.body = b"flushed; token=abc123"
    step = build("http", {"url": "{component.url}/admin/flush", "headers": {"X-Incident": "{incident.id}"},
                          "body": "component={component.name}"})
    result = step.execute(ctx(url=server.url("")))
    req = server.requests[0]
    assert req["path"] == "/admin/flush" and req["headers"]["X-Incident"] == "7"
    assert req["body"] == b"component=web"
    assert result.output == "flushed; token=***" and result.facts == {"status": 200}


@pytest.mark.parametrize(("status", "permanent"), [(404, True), (429, False), (503, False)])
def test_http_call_unexpected_status(server: Server, status: int, permanent: bool) -> None:
    server.status = status
    with pytest.raises(StrategyFailure, match=f"returned {status}") as err:
        build("http", {"url": server.url("/x")}).execute(ctx())
    assert err.value.permanent is permanent


def test_http_call_to_a_closed_port_is_retryable() -> None:
    with pytest.raises(StrategyFailure) as err:
        build("http", {"url": "http://127.0.0.1:9/x"}).execute(ctx(timeout_s=2))
    assert not err.value.permanent


def test_step_result_caps_and_redacts_output() -> None:
    clock = FakeClock()
    result = StepResult.succeeded("a\nb Authorization: Bearer abcdefgh", started_at=clock.now(),
                                  finished_at=clock.now(), output="x" * (MAX_OUTPUT_CHARS + 100) + "END")
    assert len(result.output) == MAX_OUTPUT_CHARS and result.output.endswith("END")
    assert result.detail == "a b Authorization: Bearer ***"
