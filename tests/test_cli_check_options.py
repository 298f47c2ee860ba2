"""Every check option of the apply file's ``check:`` section is a flag of `component add/update` too:
each flag round-trips into `component show --json`, bad values exit 2 naming the flag and change
nothing, and a real loopback check honours them."""

from __future__ import annotations

import json

import pytest

from tests.servers import LoopbackHTTPServer

URL = "http://127.0.0.1:8080/health"


def _check(run_cli, name: str = "api") -> dict:
    result = run_cli("component", "show", name, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["check"]


@pytest.mark.parametrize("flags, expected", [
    (["--method", "post"], {"method": "POST"}),
    (["--header", "X-Probe: yes", "--header", "Accept:application/json"],
     {"headers": {"X-Probe": "yes", "Accept": "application/json"}}),
    (["--expect-status", "200", "--expect-status", "300-302"], {"expect_status": ["200", "300-302"]}),
    (["--body-contains", "UP"], {"body_contains": "UP"}),
    (["--json-condition", '$.status == "UP"', "--json-condition", "$.checks[0].ok == true"],
     {"json_conditions": ['$.status == "UP"', "$.checks[0].ok == true"]}),
    (["--max-latency", "750ms"], {"max_latency_ms": 750.0}),
    (["--no-tls-verify"], {"verify_tls": False}),
    (["--max-redirects", "0"], {"max_redirects": 0}),
    (["--tls-warn-days", "30", "--tls-critical-days", "7"], {"tls_warn_days": 30.0, "tls_critical_days": 7.0}),
])
def test_each_check_flag_round_trips_on_add_and_update(run_cli, flags, expected) -> None:
    assert run_cli("component", "add", "api", "--url", URL, *flags).exit_code == 0
    assert _check(run_cli) == {"url": URL, **expected}
    assert run_cli("component", "add", "web", "--url", URL).exit_code == 0
    result = run_cli("component", "update", "web", *flags)
    assert result.exit_code == 0, result.output
    assert _check(run_cli, "web") == {"url": URL, **expected}


def test_update_merges_headers_and_clears_what_is_emptied(run_cli) -> None:
    assert run_cli("component", "add", "api", "--url", URL, "--header", "A: 1", "--header", "B: 2",
                   "--body-contains", "UP", "--no-tls-verify").exit_code == 0
    assert run_cli("component", "update", "api", "--header", "A:", "--header", "C: 3", "--body-contains", "",
                   "--tls-verify").exit_code == 0
    assert _check(run_cli) == {"url": URL, "headers": {"B": "2", "C": "3"}}


def test_the_apply_file_and_the_flags_store_the_same_definition(run_cli, tmp_path) -> None:
    path = tmp_path / "components.yaml"
    path.write_text(f"""components:
  - name: api
    url: {URL}
    check:
      method: POST
      headers: {{X-Probe: "yes"}}
      body_contains: UP
      json_conditions: ['$.status == "UP"']
      max_latency_ms: 500
      verify_tls: false
      max_redirects: 1
""")
    assert run_cli("apply", "-f", str(path)).exit_code == 0
    assert run_cli("component", "add", "web", "--url", URL, "--method", "POST", "--header", "X-Probe: yes",
                   "--body-contains", "UP", "--json-condition", '$.status == "UP"', "--max-latency", "500ms",
                   "--no-tls-verify", "--max-redirects", "1").exit_code == 0
    assert _check(run_cli, "api") == _check(run_cli, "web")


@pytest.mark.parametrize("args, flag", [
    (["--method", "PATCH"], "--method"),
    (["--header", "no-colon"], "--header"),
    (["--header", "Bad Name: x"], "--header"),
    (["--json-condition", "status is up"], "--json-condition"),
    (["--max-latency", "0"], "--max-latency"),
    (["--max-latency", "soon"], "--max-latency"),
    (["--max-redirects", "11"], "--max-redirects"),
    (["--header", "X: ${env:}"], "--header"),
    (["--tls-critical-days", "20"], "--tls-critical-days"),  # above the default warn days (14)
    (["--tls-warn-days", "-1"], "--tls-warn-days"),
    (["--tls-ca", "/nonexistent/ca.pem"], "--tls-ca"),
    (["--tls-ca", __file__], "--tls-ca"),  # a file, but no certificate in it
])
def test_bad_check_flags_exit_2_naming_the_flag_and_change_nothing(run_cli, args, flag) -> None:
    assert run_cli("component", "add", "api", "--url", URL, "--body-contains", "UP").exit_code == 0
    before = run_cli("component", "show", "api", "--json").stdout
    for command in (["component", "add", "web", "--url", URL], ["component", "update", "api"]):
        result = run_cli(*command, *args)
        assert result.exit_code == 2, (command, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and flag in lines[0] and "Traceback" not in result.output, result.stderr
    assert run_cli("component", "show", "api", "--json").stdout == before
    assert [c["name"] for c in json.loads(run_cli("component", "list", "--json").stdout)] == ["api"]


def test_a_real_check_honours_the_flags(run_cli) -> None:
    with LoopbackHTTPServer() as server:  # answers {"status": "UP", ...}
        assert run_cli("component", "add", "api", "--url", server.url, "--method", "POST",
                       "--header", "X-Probe: yes", "--body-contains", '"UP"').exit_code == 0
        result = run_cli("check", "api")
        assert result.exit_code == 0, result.output
        method, _path, headers = server.last_request
        assert method == "POST" and headers["X-Probe"] == "yes"

        assert run_cli("component", "update", "api", "--body-contains", "DEGRADED").exit_code == 0
        result = run_cli("check", "api")
        assert result.exit_code == 1 and "DEGRADED" in result.output, result.output

        assert run_cli("component", "update", "api", "--body-contains", "", "--json-condition",
                       '$.status == "DOWN"').exit_code == 0
        result = run_cli("check", "api")
        assert result.exit_code == 1 and "expected \"DOWN\"" in result.output, result.output


def test_tls_settings_in_the_apply_file_and_the_flags(run_cli, tmp_path) -> None:
    import trustme

    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    path = tmp_path / "components.yaml"
    path.write_text(f"""components:
  - name: api
    url: https://127.0.0.1:9/health
    check: {{tls_ca: {ca}, tls_warn_days: 30, tls_critical_days: 7}}
""")
    assert run_cli("apply", "-f", str(path)).exit_code == 0
    assert run_cli("component", "add", "web", "--url", "https://127.0.0.1:9/health", "--tls-ca", str(ca),
                   "--tls-warn-days", "30", "--tls-critical-days", "7").exit_code == 0
    assert _check(run_cli, "api") == _check(run_cli, "web") == {
        "url": "https://127.0.0.1:9/health", "tls_ca": str(ca), "tls_warn_days": 30.0, "tls_critical_days": 7.0}
    assert run_cli("component", "update", "web", "--tls-ca", "").exit_code == 0
    assert "tls_ca" not in _check(run_cli, "web")
