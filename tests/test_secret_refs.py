"""${env:NAME} and ${file:/path}: resolved in memory where used (checkers, placeholders), never stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core import redaction
from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.clock import SYSTEM_CLOCK
from orchestrator.core.errors import StrategyError, UnresolvedReference
from orchestrator.core.secret_refs import check_references, resolve, resolve_model
from orchestrator.health.checkers import get_checker
from orchestrator.plugins.contract import ComponentView, StrategyContext
from orchestrator.plugins.templating import render
from orchestrator.testing import make_context
from tests.servers import LoopbackHTTPServer


@pytest.fixture(autouse=True)
def _forget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "_known", frozenset())


def test_env_and_file_references_resolve_and_are_remembered(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-a-file-123\n")
    text = resolve(f"Bearer ${{env:API_TOKEN}} / ${{file:{secret}}}", env={"API_TOKEN": "from-env-456"})
    assert text == "Bearer from-env-456 / from-a-file-123"
    assert {"from-env-456", "from-a-file-123"} <= redaction.known_secrets()
    assert redaction.redact("echo from-env-456") == "echo ***"


@pytest.mark.parametrize(("text", "words"), [
    ("${env:NOT_SET_ANYWHERE}", "environment variable NOT_SET_ANYWHERE is not set"),
    ("${file:/nonexistent/secret}", "cannot read /nonexistent/secret"),
])
def test_unresolvable_reference_names_itself(text: str, words: str) -> None:
    with pytest.raises(UnresolvedReference, match=words):
        resolve(text, env={})


@pytest.mark.parametrize("text", ["${env:}", "${env:bad name}", "${file:relative/path}"])
def test_malformed_reference_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad reference"):
        check_references(text)


def test_text_without_references_is_untouched() -> None:
    spec = CheckSpec(url="http://127.0.0.1:1/x", headers={"Accept": "json"})
    assert resolve_model(spec) is spec
    assert resolve("${unknown:thing} $HOME") == "${unknown:thing} $HOME"


def test_http_check_sends_the_resolved_header_and_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_CHECK_TOKEN", "tok-resolved-789")
    with LoopbackHTTPServer() as server:
        spec = CheckSpec(url=server.url, headers={"X-Api-Token": "${env:T_CHECK_TOKEN}"})
        result = get_checker("http").check(spec, timeout_s=2)
        assert result.ok, result.error
        assert server.last_request[2]["X-Api-Token"] == "tok-resolved-789"
    assert spec.headers["X-Api-Token"] == "${env:T_CHECK_TOKEN}", "the spec itself keeps the reference"


def test_check_with_an_unset_variable_fails_with_a_reason_not_an_exception() -> None:
    spec = CheckSpec(url="http://127.0.0.1:1/x", headers={"Authorization": "Bearer ${env:T_UNSET_VAR}"})
    result = get_checker("http").check(spec, timeout_s=1)
    assert not result.ok and "T_UNSET_VAR is not set" in result.error


def _context(**vars_: str) -> StrategyContext:
    view = ComponentView(name="api", url="http://u:${env:T_URL_PW}@127.0.0.1:1/", check=CheckSpec(url="http://h/"),
                         vars=vars_)
    return make_context(view, incident_id=1, clock=SYSTEM_CLOCK)


def test_placeholders_receive_the_real_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_URL_PW", "pw-from-env")
    monkeypatch.setenv("T_ADMIN", "admin-from-env")
    argv = render(["tool", "{component.url}", "--token={vars.admin}"], _context(admin="${env:T_ADMIN}"))
    assert argv == ["tool", "http://u:pw-from-env@127.0.0.1:1/", "--token=admin-from-env"]


def test_placeholder_with_an_unset_variable_is_a_permanent_step_failure() -> None:
    with pytest.raises(StrategyError, match="T_NOPE_UNSET is not set") as info:
        render(["tool", "{vars.admin}"], _context(admin="${env:T_NOPE_UNSET}"))
    assert info.value.permanent
