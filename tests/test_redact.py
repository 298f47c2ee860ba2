"""redact() hides every kind of secret we store or log, and leaves ordinary text alone."""

from __future__ import annotations

import pytest

from orchestrator.core.redaction import redact

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
