"""Login and throttling: ``next`` only ever a path on this server; wrong tokens delayed by address and
token fingerprint, the right one served at once; ``--trusted-proxies`` tells a proxy's clients apart."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from orchestrator.core.clock import FakeClock
from orchestrator.db.engine import Database
from orchestrator.db.models import AuditEntry
from orchestrator.web import server
from orchestrator.web.app import create_app
from orchestrator.web.auth import FREE_GUESSES
from orchestrator.web.redirects import local_path
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.test_reports import seed

TOKEN = "correct-horse-battery-staple"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
ACK = "/api/v1/incidents/3/ack"

OFF_SITE = ["//evil.example", "/\t/evil.example", "/\n/evil.example", "\t//evil.example", "/\\evil.example",
            "https://evil.example/", "javascript:alert(1)", "evil.example", "/\x00/evil.example", " //evil.example"]


def _app(db: Database, clock: FakeClock | None = None, **settings):
    now = datetime.now(UTC)
    seed(db, now)
    return create_app(DatabaseSource(db, clock=clock or FakeClock(now)), WebSettings(token=TOKEN, **settings))


def _csrf(client) -> str:
    return client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]


@pytest.mark.parametrize("target", OFF_SITE, ids=repr)
def test_login_never_redirects_off_site(db: Database, target: str) -> None:
    client = _app(db).test_client()
    response = client.post("/login", data={"token": TOKEN, "csrf_token": _csrf(client), "next": target})
    assert response.status_code == 303 and response.headers["Location"] == "/", response.headers["Location"]
    assert local_path(target) == "/"


def test_same_origin_paths_are_kept_with_control_characters_stripped(db: Database) -> None:
    assert local_path("/components/web?x=1") == "/components/web?x=1"
    assert local_path("/incidents/\t3") == "/incidents/3"
    client = _app(db).test_client()
    csrf = _csrf(client)
    client.post("/login", data={"token": TOKEN, "csrf_token": csrf})
    form = client.post("/api/v1/components/web/resume", data={"csrf_token": csrf, "next": "/\t/evil.example"})
    assert form.status_code == 303 and form.headers["Location"] == "/"


def test_a_stale_token_repeated_locks_nobody_out(db: Database) -> None:
    client = _app(db).test_client()
    stale = {"Authorization": "Bearer stale"}
    for _ in range(3 * FREE_GUESSES):  # a broken script retrying: the same wrong token, not guessing
        assert client.post(ACK, headers=stale).status_code == 401
    assert client.post(ACK, headers={"Authorization": "Bearer typo"}).status_code == 401
    assert client.post(ACK, headers=BEARER).status_code == 200  # the right one after failures: at once


def test_the_login_form_after_a_typo_logs_in_at_once(db: Database) -> None:
    client = _app(db).test_client()
    csrf = _csrf(client)
    assert client.post("/login", data={"token": "typo", "csrf_token": csrf}).status_code == 401
    assert client.post("/login", data={"token": "typo2", "csrf_token": csrf}).status_code == 401
    assert client.post("/login", data={"token": TOKEN, "csrf_token": csrf}).status_code == 303


def test_guessing_many_tokens_slows_the_whole_address(db: Database) -> None:
    clock = FakeClock(datetime.now(UTC))
    client = _app(db, clock=clock).test_client()
    for n in range(FREE_GUESSES):
        assert client.post(ACK, headers={"Authorization": f"Bearer guess-{n}"}).status_code == 401
    assert client.post(ACK, headers=BEARER).status_code in (200, 409)  # a few typos cost nothing
    assert client.post(ACK, headers={"Authorization": "Bearer one-too-many"}).status_code == 401
    throttled = client.post(ACK, headers=BEARER)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    assert throttled.get_json()["error"]["field"] == "Authorization"
    clock.advance(1.5)
    assert client.post(ACK, headers={"Authorization": "Bearer and-another"}).status_code == 401
    assert client.post(ACK, headers=BEARER).headers["Retry-After"] == "2"  # doubled
    clock.advance(2.5)
    assert client.post(ACK, headers=BEARER).status_code in (200, 409)


def _post(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("trusted", [0, 1], ids=["no proxy", "one proxy"])
def test_trusted_proxies_tell_a_proxys_clients_apart(db: Database, trusted: int) -> None:
    now = datetime.now(UTC)
    seed(db, now)
    web = server.start(DatabaseSource(db, clock=FakeClock(now)), "127.0.0.1:0",
                       WebSettings(token=TOKEN, trusted_proxies=trusted))
    try:
        url = f"{web.url}api/v1/incidents/3/ack"
        for n in range(FREE_GUESSES + 1):  # one client behind the proxy guesses
            assert _post(url, {"Authorization": f"Bearer guess-{n}", "X-Forwarded-For": "192.0.2.7"}) == 401
        assert _post(url, {**BEARER, "X-Forwarded-For": "192.0.2.7"}) == 429
        # an operator behind the same proxy
        assert _post(url, {**BEARER, "X-Forwarded-For": "192.0.2.9"}) == (200 if trusted else 429)
    finally:
        web.stop()
    with db.read() as session:
        hosts = session.scalars(select(AuditEntry.host).where(AuditEntry.action == "ack")).all()
    assert hosts == (["192.0.2.9"] if trusted else [])


@pytest.mark.parametrize("command", ["run", "web"])
def test_run_and_web_take_trusted_proxies(runner, command: str) -> None:
    from orchestrator.cli import cli

    result = runner.invoke(cli, [command, "--help"])
    assert result.exit_code == 0 and "--trusted-proxies" in result.output
    bad = runner.invoke(cli, [command, "--trusted-proxies", "many"])
    assert bad.exit_code == 2 and "--trusted-proxies" in bad.output
