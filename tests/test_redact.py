"""redact() hides every kind of secret we store or log, and leaves ordinary text alone."""

from __future__ import annotations

import pytest

from orchestrator.core import redaction
from orchestrator.core.redaction import is_secret_name, redact, redact_headers, redact_view, secret_values

CASES = [
    ("url-password", "json://user:pass@host", "json://user:***@host"),
    ("https-userinfo-and-query", "https://u:p@example.com/x?token=abc&page=2&api_key=zz",
     "https://u:***@example.com/x?token=***&page=2&api_key=***"),
    ("query-signature", "GET http://127.0.0.1:8080/hook?signature=deadbeef&id=4",
     "GET http://127.0.0.1:8080/hook?signature=***&id=4"),
    ("query-password-case", "http://h.example/?Password=x&Auth=y", "http://h.example/?Password=***&Auth=***"),
    ("slack-tokens", "slack://TokenA/TokenB/TokenC", "slack://***/***/***"),
    ("slack-channel-kept", "slack://TokenA/TokenB/TokenC/#general", "slack://***/***/***/#general"),
    ("telegram-bot-token", "tgram://123456789:AAbbCC/12345", "tgram://***/***"),
    ("json-path-token", "json://user:pw@127.0.0.1:8080/hooks/abc", "json://user:***@127.0.0.1:8080/***/***"),
    ("gotify-token", "gotify://gotify.example.com/AbCdEf123", "gotify://gotify.example.com/***"),
    ("slack-webhook-https", "https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX1",
     "https://hooks.slack.com/services/T0000000/B0000000/***"),
    ("authorization-bearer", "Authorization: Bearer abc.def.ghi", "Authorization: Bearer ***"),
    ("authorization-basic-quoted", 'curl -H "Authorization: Basic dXNlcjpwYXNz"',
     'curl -H "Authorization: Basic ***"'),
    ("bare-bearer", "sent Bearer abcdefghij to the API", "sent Bearer *** to the API"),
    ("json-password", '{"password": "hunter2", "user": "bob"}', '{"password": "***", "user": "bob"}'),
    ("key-value", "DB_PASSWORD=s3cret API_TOKEN=t0k restart=ok", "DB_PASSWORD=*** API_TOKEN=*** restart=ok"),
    ("signature-header", "X-Orchestrator-Signature: sha256=abcdef", "X-Orchestrator-Signature: ***"),
    ("flag-password-space", "mysql --password hunter22 db", "mysql --password *** db"),
    ("flag-password-equals", "mysql --password=hunter22 db", "mysql --password=*** db"),
    ("flag-short-p-space", "mysql -p hunter22 db", "mysql -p *** db"),
    ("flag-short-p-joined", "mysql -phunter22 db", "mysql -p*** db"),
    ("env-assignment", "PASSWORD=hunter22 ./start", "PASSWORD=*** ./start"),
    ("flag-in-json-argv", 'run ["mysql", "--password", "hunter22"]', 'run ["mysql", "--password", "***"]'),
    ("short-p-in-json-argv", 'run ["mysql", "-p", "hunter22"]', 'run ["mysql", "-p", "***"]'),
    ("api-key-flag", "tool --api-key abc123 go", "tool --api-key *** go"),
    ("secret-var-flag", "orchestrator component add x --secret-var k=v", "orchestrator component add x --secret-var ***"),
    ("tcp-userinfo", "tcp://u:pw@db:5432", "tcp://u:***@db:5432"),
    ("db-url-with-driver", "postgresql+psycopg://app:pw@db:5432/app?options=-csearch_path%3Dx",
     "postgresql+psycopg://app:***@db:5432/app?options=-csearch_path%3Dx"),
]

UNCHANGED = [
    "http://127.0.0.1:8080/health",
    "mailto://ops@example.com",
    "restarted web.service in 1.2s",
    "kubectl rollout restart deployment/web -n prod",
    "https://api.example.com/v1/items/42?page=2",
    "",
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_secret_is_hidden(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("text", [c[1] for c in CASES] + UNCHANGED)
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


def test_secret_inside_multiline_output_is_hidden() -> None:
    output = "starting\nconnecting to postgresql://app:pa55@db.example.com/app\ntoken=abc123\ndone"
    hidden = redact(output)
    assert "pa55" not in hidden and "abc123" not in hidden
    assert hidden.splitlines()[0] == "starting" and hidden.splitlines()[-1] == "done"


def test_known_values_are_masked_anywhere_in_text() -> None:
    text = "restart said: connected with s3cr3t-value (s3cr3t-value again)"
    assert redact(text, {"s3cr3t-value"}) == "restart said: connected with *** (*** again)"


def test_short_values_are_masked_only_as_a_whole_field() -> None:
    assert redact("abc", {"abc"}) == "***"
    assert redact("abcdef", {"abc"}) == "abcdef"


def test_references_stay_visible() -> None:
    assert redact("http://u:${env:DB_PW}@h/x") == "http://u:${env:DB_PW}@h/x"
    view = redact_view({"headers": {"Authorization": "Bearer ${env:TOKEN}", "X-Api-Key": "${file:/run/key}"}})
    assert view == {"headers": {"Authorization": "Bearer ${env:TOKEN}", "X-Api-Key": "${file:/run/key}"}}


@pytest.mark.parametrize("name", ["Authorization", "Proxy-Authorization", "Cookie", "X-Api-Token", "X-API-Key",
                                  "admin_token", "db_password", "client_secret", "x-auth", "session_id"])
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["Accept", "Content-Type", "unit", "X-Request-Id", "replicas", "region"])
def test_plain_names(name: str) -> None:
    assert not is_secret_name(name)


def test_redact_view_masks_by_key_and_by_value() -> None:
    data = {"vars": {"admin_token": "t0", "unit": "api.service", "conn": "shh-1234"},
            "secret_vars": {"anything": "x"}, "check": {"headers": {"Authorization": "Basic dXNlcjpwYXNz",
                                                                    "Accept": "json"}},
            "last_error": "GET http://u:pw@h/ said shh-1234", "limit": {"max_tokens": 5}}
    assert redact_view(data, {"shh-1234"}) == {
        "vars": {"admin_token": "***", "unit": "api.service", "conn": "***"},
        "secret_vars": {"anything": "***"}, "check": {"headers": {"Authorization": "Basic ***", "Accept": "json"}},
        "last_error": "GET http://u:***@h/ said ***", "limit": {"max_tokens": 5}}


def test_redact_headers() -> None:
    assert redact_headers({"Authorization": "Bearer abc", "Accept": "text/plain"}) == {
        "Authorization": "Bearer ***", "Accept": "text/plain"}


def test_secret_values_of_a_definition() -> None:
    definition = {"check": {"url": "http://u:p%40ss@h/x?token=qq", "headers": {"X-Api-Token": "tok",
                                                                               "Authorization": "Bearer abcd"}},
                  "backup_url": "http://b:bpw@h/", "vars": {"admin_token": "adm", "unit": "web"},
                  "secret_vars": {"conn": "c0nn", "ref": "${env:X}"}}
    assert secret_values(definition) == {"p%40ss", "p@ss", "qq", "tok", "Bearer abcd", "abcd", "bpw", "adm", "c0nn"}


def test_remembered_values_are_masked_by_every_later_redact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "_known", frozenset())
    redaction.remember(["resolved-from-env"])
    assert redact("the value resolved-from-env leaked") == "the value *** leaked"
    redaction.remember(["ab"])  # too short to search for in text
    assert "ab" not in redaction.known_secrets()


def test_log_filter_redacts_the_final_message() -> None:
    import logging

    from orchestrator.core.logs import RedactingFilter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "calling %s with %s", ("http://u:pw@h/", "-p hunter2"),
                               None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "calling http://u:***@h/ with -p ***"


def test_a_pass_query_parameter_or_assignment_is_masked() -> None:
    """Regression: ``?pass=`` (Apprise's mail password) and ``pass=`` went out as typed; a word that
    merely starts like it (``passenger``) stays visible."""
    assert "hunter2" not in redact("mailto://user@example.com?pass=hunter2&to=ops@example.com")
    assert "hunter2" not in redact("smtp login pass=hunter2 failed")
    assert redact("passenger=bob") == "passenger=bob"
