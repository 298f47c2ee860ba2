"""Notifications as people and receivers get them, through real servers on loopback: a real SMTP server
(aiosmtpd) receiving Apprise's mailto://, and a real webhook receiver checking the structured body
against the JSON Schema of docs/notifications.md and the signature with the snippet of the same page."""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import select

from orchestrator.core.clock import FakeClock
from orchestrator.core.states import Resolution
from orchestrator.db.models import Incident, Notification
from orchestrator.incidents.lifecycle import resolve
from orchestrator.incidents.notifier import Notifier
from orchestrator.incidents.notify_send import SIGNATURE_HEADER, Webhook, send
from orchestrator.incidents.routing import Notifications
from tests.servers import LoopbackHTTPServer, wait_for
from tests.test_recovery_support import add_component, open_for

DOCS = Path(__file__).resolve().parent.parent / "docs" / "notifications.md"
PUBLIC_URL = "https://ops.example.com"
SECRET = "s3cret-webhook-key"


def _block(tag: str) -> str:
    match = re.search(rf"```{tag}\n(.*?)\n```", DOCS.read_text(), re.S)
    assert match, f"no ```{tag} block in {DOCS}"
    return match.group(1)


SCHEMA = json.loads(_block("json schema"))


def documented_verify():
    """The verification snippet of docs/notifications.md, run as written."""
    namespace: dict[str, Any] = {}
    exec(compile(_block("python"), str(DOCS), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]


# --- receivers --------------------------------------------------------------------------------------


class Mailbox:
    """aiosmtpd handler keeping every message received."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    with socket.socket() as probe:  # aiosmtpd needs the port before it listens (it connects to itself)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def receiver() -> Iterator[list[dict]]:
    """A webhook receiver on loopback: every request's headers and raw body."""
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.append({"headers": dict(self.headers), "body": body, "path": self.path})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    got.append({"url": f"http://127.0.0.1:{httpd.server_address[1]}/hook"})
    try:
        yield got
    finally:
        httpd.shutdown()
        httpd.server_close()


def _incident_down_then_resolved(db, server_url: str) -> tuple[int, FakeClock]:
    component_id = add_component(db, "api", server_url, plan=None, labels={"team": "core"})
    incident_id = open_for(db, component_id, "api", reason="3 consecutive failures: connection refused")
    with db.read() as session:
        opened_at = session.get(Incident, incident_id).opened_at
    return incident_id, FakeClock(opened_at + timedelta(seconds=42))


def _resolve(db, incident_id: int, clock: FakeClock) -> None:
    with db.write() as session:
        incident = session.scalar(select(Incident).where(Incident.id == incident_id))
        assert resolve(session, incident, at=clock.now(), resolution=Resolution.AUTO, reason="restart verified")


# --- mail -------------------------------------------------------------------------------------------


def test_mail_keeps_its_lines_names_component_and_state_and_links_the_incident(db, smtp) -> None:
    """Regression: Apprise was called without a body format, so mail (an HTML target) got the text
    body as HTML and every line break was lost; subjects said `[incident 2] gamma opened`; no link."""
    box, port = smtp
    with LoopbackHTTPServer() as server:
        incident_id, clock = _incident_down_then_resolved(db, server.url)
    config = Notifications.model_validate({
        "urls": [f"mailto://127.0.0.1:{port}?from=orchestrator@example.com&to=ops@example.com&mode=insecure"],
        "group_window": "1s"})
    notifier = Notifier(db, config, clock=clock, public_url=PUBLIC_URL)
    assert notifier.flush(force=True) == 1
    _resolve(db, incident_id, clock)
    assert notifier.flush(force=True) == 1
    assert wait_for(lambda: len(box.messages) == 2, timeout_s=30)

    down, resolved = box.messages
    assert down["Subject"] == "[DOWN] api: 3 consecutive failures: connection refused"
    assert resolved["Subject"] == "[RESOLVED] api after 42 s: restart verified"
    link = f"{PUBLIC_URL}/incidents/{incident_id}"
    for message in (down, resolved):
        text = message.get_body(("plain",)).get_content()
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        assert len(lines) >= 2, text  # the event line and its link, not run together
        assert lines[0].endswith(f"api incident {incident_id} {'opened' if message is down else 'resolved (auto)'}"
                                 f": {'3 consecutive failures: connection refused' if message is down else 'restart verified'}"), text
        assert link in lines[1], text
        html = message.get_body(("html",)).get_content()
        assert f'<a href="{link}">' in html and "<li>" in html


def test_the_notify_step_mail_links_the_incident_and_keeps_lines(smtp) -> None:
    from orchestrator.incidents.notify_send import set_public_url
    from tests.test_strategies import build, ctx

    box, port = smtp
    set_public_url(PUBLIC_URL)
    try:
        step = build("notify", {"urls": [f"mailto://127.0.0.1:{port}?from=o@example.com&to=ops@example.com"
                                         "&mode=insecure"],
                                "message": "first line\nsecond line"})
        step.execute(ctx())
    finally:
        set_public_url(None)
    assert wait_for(lambda: len(box.messages) == 1, timeout_s=30)
    [message] = box.messages
    assert message["Subject"] == "[DOWN] web: recovering, attempt 1 (incident 7)"
    text = message.get_body(("plain",)).get_content()
    assert [line for line in text.splitlines() if line.strip()] == ["first line", "second line",
                                                                     f"{PUBLIC_URL}/incidents/7"]


# --- webhooks ---------------------------------------------------------------------------------------


def test_webhook_body_is_structured_valid_and_signed_with_a_timestamp(db, receiver) -> None:
    """Regression: the body was {title, body, incidents, events: [kinds]} with no component or state,
    and the signature (sha256=<hmac of the body>) had no timestamp, so a captured request could be
    replayed for ever."""
    url = receiver.pop(0)["url"]
    with LoopbackHTTPServer() as server:
        incident_id, clock = _incident_down_then_resolved(db, server.url)
    config = Notifications.model_validate({"webhooks": [{"url": url, "secret": SECRET}], "group_window": "1s"})
    notifier = Notifier(db, config, clock=clock, public_url=PUBLIC_URL)
    assert notifier.flush(force=True) == 1
    _resolve(db, incident_id, clock)
    assert notifier.flush(force=True) == 1
    assert len(receiver) == 2

    verify = documented_verify()
    link = f"{PUBLIC_URL}/incidents/{incident_id}"
    down, resolved = (json.loads(r["body"]) for r in receiver)
    for request, doc in zip(receiver, (down, resolved), strict=True):
        jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.FormatChecker())
        header = request["headers"][SIGNATURE_HEADER]
        assert verify(request["body"], header, SECRET, now=clock.now().timestamp())
        assert not verify(request["body"] + b" ", header, SECRET, now=clock.now().timestamp())
        assert not verify(request["body"], header, "another secret", now=clock.now().timestamp())
        # the same request replayed ten minutes later is refused
        assert not verify(request["body"], header, SECRET, now=clock.now().timestamp() + 600)
        assert doc["component"] == "api" and doc["labels"] == {"team": "core"}
        assert doc["links"] == {"incident": link, "page": PUBLIC_URL} and doc["incidents"] == [incident_id]
    assert (down["event"], down["state"], down["incident"]["status"]) == ("opened", "DOWN", "open")
    assert down["title"] == "[DOWN] api: 3 consecutive failures: connection refused"
    assert (resolved["event"], resolved["state"], resolved["resolution"]) == ("resolved", "RESOLVED", "auto")
    assert resolved["incident"]["status"] == "resolved" and resolved["incident"]["resolved_at"]
    assert resolved["title"] == "[RESOLVED] api after 42 s: restart verified"
    assert resolved["events"][0]["component_state"] is not None


def test_a_digest_names_its_components_and_validates(db, receiver) -> None:
    url = receiver.pop(0)["url"]
    with LoopbackHTTPServer() as server:
        for name in ("api", "db", "cache", "queue"):
            open_for(db, add_component(db, name, server.url, plan=None), name, reason="timeout")
    config = Notifications.model_validate({"webhooks": [{"url": url}], "group_window": "1s"})
    assert Notifier(db, config, public_url=PUBLIC_URL).flush(force=True) == 1
    [request] = receiver
    doc = json.loads(request["body"])
    jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert doc["title"] == "[DOWN] api, db, cache and 1 more: 4 opened"
    assert (doc["event"], doc["component"], doc["incident"]) == ("digest", None, None)
    assert [e["component"] for e in doc["events"]] == ["api", "db", "cache", "queue"]
    assert SIGNATURE_HEADER not in request["headers"]  # no secret, no signature


def test_the_notify_step_webhook_validates_against_the_schema(receiver) -> None:
    from tests.test_strategies import build, ctx

    url = receiver.pop(0)["url"]
    build("notify", {"webhooks": [{"url": url, "secret": SECRET}]}).execute(ctx())
    [request] = receiver
    doc = json.loads(request["body"])
    jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert (doc["event"], doc["component"], doc["incident"]["id"]) == ("notify_step", "web", 7)
    sent_at = datetime.fromisoformat(doc["sent_at"]).timestamp()  # the step's injected clock
    assert documented_verify()(request["body"], request["headers"][SIGNATURE_HEADER], SECRET, now=sent_at)


def test_the_documented_snippet_and_the_senders_check_agree(receiver) -> None:
    from orchestrator.incidents.notify_send import verify

    url = receiver.pop(0)["url"]
    now = int(time.time())
    send([], [Webhook(url=url, secret=SECRET)], "t", "b", 5, payload={"x": 1}, timestamp=now - 400)
    [request] = receiver
    header = request["headers"][SIGNATURE_HEADER]
    assert header.startswith(f"t={now - 400},v1=")
    for check in (documented_verify(), verify):
        assert not check(request["body"], header, SECRET, now=now)  # older than the 5 minutes
        assert check(request["body"], header, SECRET, now=now - 300)


def test_a_mail_password_given_as_a_query_parameter_is_never_stored_or_logged(db, smtp, caplog) -> None:
    """Regression: ``mailto://…?user=u&pass=…`` was stored and logged as given (the password is a query
    parameter only Apprise knows to be secret); the target is now Apprise's own privacy form."""
    _box, port = smtp
    with LoopbackHTTPServer() as server:
        open_for(db, add_component(db, "api", server.url, plan=None), "api")
    url = f"mailto://127.0.0.1:{port}?from=o@example.com&to=ops@example.com&user=u&pass=hunter2"
    notifier = Notifier(db, Notifications.model_validate({"urls": [url]}), public_url=PUBLIC_URL)
    assert notifier.flush(force=True) == 1  # the server offers no AUTH: a failed delivery, recorded
    with db.read() as session:
        [row] = session.scalars(select(Notification)).all()
    assert row.status == "failed" and "127.0.0.1" in row.channel
    assert "hunter2" not in f"{row.channel} {row.error}" and "hunter2" not in caplog.text


def test_the_running_daemon_links_its_notifications_to_the_configured_public_url(db, db_url, tmp_path,
                                                                                 receiver) -> None:
    """`orchestrator run` with ``public_url`` in its configuration file: the incident it opens for a
    component that stopped answering is notified with the incident page's link (config → daemon → notifier)."""
    from orchestrator.components.definition import ComponentSpec
    from orchestrator.components.registry import Registry
    from tests.daemon_helpers import poll, scalar, spawn

    url = receiver.pop(0)["url"]
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"version": 1, "plans": {}, "notifications": {
        "webhooks": [{"url": url, "secret": SECRET}], "group_window": "100ms", "events": ["opened"]}}))
    config = tmp_path / "orchestrator.toml"
    config.write_text(f'database_url = "{db_url}"\nplans = "{plans}"\npublic_url = "{PUBLIC_URL}/"\n')
    with LoopbackHTTPServer() as server:
        dead = server.url  # closed when the block ends: nothing answers there any more
    Registry(db).add(ComponentSpec(name="svc", url=dead, interval=0.2, timeout=0.1, failure_threshold=2))
    daemon = spawn(["run"], tmp_path, {"ORCHESTRATOR_CONFIG": str(config)})
    try:
        poll(lambda: receiver or daemon.poll() is not None, 60)
        assert daemon.poll() is None, daemon.communicate()
    finally:
        daemon.terminate()
        daemon.wait(30)
    incident_id = scalar(db, "SELECT id FROM incidents WHERE component_name = 'svc'")
    doc = json.loads(receiver[0]["body"])
    jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert doc["title"].startswith("[DOWN] svc: ") and doc["component"] == "svc"
    assert doc["links"]["incident"] == f"{PUBLIC_URL}/incidents/{incident_id}"
    assert f"{PUBLIC_URL}/incidents/{incident_id}" in doc["body"]
    assert documented_verify()(receiver[0]["body"], receiver[0]["headers"][SIGNATURE_HEADER], SECRET)


def test_the_notify_step_fills_incident_url_and_links_once(receiver) -> None:
    from orchestrator.incidents.notify_send import set_public_url
    from tests.test_strategies import build, ctx

    url = receiver.pop(0)["url"]
    set_public_url(PUBLIC_URL)
    try:
        build("notify", {"webhooks": [{"url": url}], "message": "see {incident.url}"}).execute(ctx())
    finally:
        set_public_url(None)
    build("notify", {"webhooks": [{"url": url}], "message": "see {incident.url}"}).execute(ctx())
    with_link, without = (json.loads(r["body"]) for r in receiver)
    assert with_link["body"] == f"see {PUBLIC_URL}/incidents/7"  # given in the template: not appended twice
    assert with_link["links"]["incident"] == f"{PUBLIC_URL}/incidents/7"
    assert without["body"] == "see " and without["links"] == {"incident": None, "page": None}
