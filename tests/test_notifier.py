"""Incident notifications: routing by event, grouping per window (fake clock), stored deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.core.clock import FakeClock
from orchestrator.db.models import Notification
from orchestrator.incidents import events
from orchestrator.incidents.lifecycle import IncidentEvent
from orchestrator.incidents.notifier import Notifier, compose
from orchestrator.incidents.notify_send import Delivery
from orchestrator.incidents.routing import Notifications
from tests.servers import LoopbackHTTPServer
from tests.test_recovery_support import add_component, open_for

AT = datetime(2026, 1, 1, tzinfo=UTC)


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def __call__(self, urls, webhooks, title, body, timeout_s, **kw):
        self.sent.append((title, body))
        return [Delivery(hook.url, "webhook", True, "delivered", 0.01, 200) for hook in webhooks]


def config(**kw) -> Notifications:
    return Notifications.model_validate({"webhooks": [{"url": "http://127.0.0.1:9/hook?token=abc123"}], **kw})


def event(kind: str, n: int, name: str = "web") -> IncidentEvent:
    return IncidentEvent(kind, n, None, f"{name}{n}", AT, "check failed")


def test_twenty_failures_in_ten_seconds_make_one_message(db) -> None:
    clock, outbox = FakeClock(AT), Outbox()
    notifier = Notifier(db, config(), clock=clock, sender=outbox)
    for n in range(20):
        notifier.publish(event("opened", n))
        clock.advance(0.5)
    assert notifier.flush() == 0 and outbox.sent == []  # the window (30s) is still open
    clock.advance(21)
    assert notifier.flush() == 1 and notifier.flush() == 0
    [(title, body)] = outbox.sent
    assert title == "[DOWN] web0, web1, web2 and 17 more: 20 opened" and len(body.splitlines()) == 20


def test_only_routed_events_are_sent_and_a_new_window_starts_after_a_flush(db) -> None:
    with LoopbackHTTPServer("ok") as server:
        for name in ("web1", "web2"):
            open_for(db, add_component(db, name, server.url, plan=None), name)
    clock, outbox = FakeClock(AT), Outbox()
    notifier = Notifier(db, config(events=["escalated"], group_window="10s"), clock=clock, sender=outbox)
    notifier.publish(event("opened", 1))
    notifier.publish(event("resolved", 1))
    assert notifier.pending() == 0
    notifier.publish(event("escalated", 1))
    clock.advance(10)
    notifier.flush()
    notifier.publish(event("escalated", 2))
    clock.advance(5)
    assert notifier.flush() == 0
    clock.advance(5)
    assert notifier.flush() == 1
    assert [t for t, _ in outbox.sent] == ["[ESCALATED] web1: check failed", "[ESCALATED] web2: check failed"]


def test_each_delivery_is_stored_with_the_destination_redacted(db) -> None:
    with LoopbackHTTPServer("ok") as server:
        cid = add_component(db, "web", server.url, plan=None)
        iid = open_for(db, cid, "web")
    clock, outbox = FakeClock(AT), Outbox()
    notifier = Notifier(db, config(events=["escalated"]), clock=clock, sender=outbox)
    notifier.publish(IncidentEvent("escalated", iid, cid, "web", AT, "plan exhausted"))
    assert notifier.flush(force=True) == 1
    with db.read() as session:
        [row] = session.scalars(select(Notification)).all()
    assert (row.incident_id, row.event, row.status) == (iid, "escalated", "sent")
    assert "abc123" not in row.channel and row.sent_at is not None


def test_events_come_from_the_database_and_are_sent_once_across_processes(db) -> None:
    """The status change writes the event row; whichever notifier takes it first sends it, once; an
    event read but not yet sent when its process died is sent by the next one."""
    from orchestrator.recovery import records

    with LoopbackHTTPServer("ok") as server:
        cid = add_component(db, "web", server.url, plan=None)
        iid = open_for(db, cid, "web")
    records.escalate(db, iid, "plan exhausted", AT)
    clock = FakeClock(AT)
    first, second, dead = Outbox(), Outbox(), Outbox()
    crashed = Notifier(db, config(events=["escalated"]), clock=clock, sender=dead)
    assert crashed.collect() == 1  # read, then "killed" before its window closed: nothing was taken
    one = Notifier(db, config(events=["escalated"]), clock=clock, sender=first)
    two = Notifier(db, config(events=["escalated"]), clock=clock, sender=second)
    assert one.collect() == two.collect() == 1
    assert one.flush(force=True) == 1 and two.flush(force=True) == 1
    assert [t for t, _ in first.sent] == ["[ESCALATED] web: plan exhausted"] and second.sent == [] and dead.sent == []
    assert "plan exhausted" in first.sent[0][1]
    assert Notifier(db, config(), clock=clock, sender=Outbox()).collect() == 0  # taken: nothing left to send


def test_a_failed_delivery_is_stored_as_failed(db) -> None:
    def broken(*args, **kw):
        raise RuntimeError("smtp down password=hunter2")

    notifier = Notifier(db, config(), clock=FakeClock(AT), sender=broken)
    notifier.publish(event("opened", 1))
    notifier.publish(event("opened", 2))  # two incidents: one digest row, not tied to either
    notifier.flush(force=True)
    with db.read() as session:
        [row] = session.scalars(select(Notification)).all()
    assert (row.status, row.event, row.incident_id) == ("failed", "opened", None) and "hunter2" not in row.error


def test_compose_caps_long_digests() -> None:
    title, body = compose([event("opened", n) for n in range(80)])
    assert title.startswith("[DOWN] web0, web1, web2 and 77 more: 80 opened") and body.endswith("… and 30 more")


def test_blocked_is_notified_by_default(db) -> None:
    """Regression (issue 14, defect 4): ``blocked`` was not a default notification event, so a crash loop
    held by the flapping guard told nobody. With ``events`` left out it is sent like an escalation."""
    clock, outbox = FakeClock(AT), Outbox()
    notifier = Notifier(db, config(group_window="1s"), clock=clock, sender=outbox)
    notifier.publish(event("blocked", 1))
    clock.advance(1)
    assert notifier.flush() == 1
    assert [t for t, _ in outbox.sent] == ["[BLOCKED] web1: check failed"]


def test_an_event_committed_after_a_later_one_is_still_notified(db) -> None:
    """Regression (the 30-minute soak, PostgreSQL: an incident blocked 41 s and nobody told): the notifier
    read the events "above the highest id read so far", but a PostgreSQL id is taken at the insert and
    seen at the commit, so a recovery run's ``blocked`` event inserted before the recorder's ``opened`` of
    another incident and committed after it was skipped for good. Two real transactions, committed in
    the other order than their ids."""
    if db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: its ids are committed in order")
    with LoopbackHTTPServer("ok") as server:
        first = open_for(db, add_component(db, "api", server.url, plan=None), "api")
        second = open_for(db, add_component(db, "web", server.url, plan=None), "web")
    clock, outbox = FakeClock(AT), Outbox()
    notifier = Notifier(db, config(events=["blocked", "escalated"]), clock=clock, sender=outbox)
    assert notifier.collect() == 0  # the two "opened" are not routed
    with Session(db.engine) as late:
        events.record(late, first, "blocked", AT, reason="guard flapping")
        late.flush()  # its id is taken now, below the next one
        with db.write() as session:
            events.record(session, second, "escalated", AT, reason="plan exhausted")
        assert notifier.collect() == 1  # the escalation, committed first
        late.commit()
    assert notifier.collect() == 1, "the event committed late was skipped"
    assert notifier.collect() == 0  # queued once, not again
    assert notifier.flush(force=True) == 1
    [(title, body)] = outbox.sent
    assert "blocked" in body and "escalated" in body, body


def test_an_event_read_after_a_restart_waits_out_its_own_window_not_a_new_one(db) -> None:
    """Regression (the 30-minute soak, SQLite: an incident blocked 46 s before anybody was told): a
    daemon killed 10 s into the window of a ``blocked`` event; the next one read the event and opened a
    fresh 30 s window. The window runs from the event's own time."""
    with LoopbackHTTPServer("ok") as server:
        iid = open_for(db, add_component(db, "api", server.url, plan=None), "api")
    with db.write() as session:
        events.record(session, iid, "blocked", AT, reason="guard flapping")
    clock, outbox = FakeClock(AT + timedelta(seconds=25)), Outbox()  # the next daemon, 25 s later
    notifier = Notifier(db, config(events=["blocked"], group_window="30s"), clock=clock, sender=outbox)
    assert notifier.collect() == 1 and notifier.flush() == 0  # 25 s of the window have passed
    clock.advance(5)
    assert notifier.flush() == 1, "the blocked event waited a second window"
    assert [t for t, _ in outbox.sent] == ["[BLOCKED] api: guard flapping"]


def test_events_whose_sending_met_a_database_cut_go_at_the_next_flush_not_a_window_later(db) -> None:
    """Regression (the 30-minute soak, PostgreSQL: an incident blocked 51 s before anybody was told): the
    database was cut at the moment the window's events were to be taken, and the notifier queued them
    again under a fresh 30 s window. They had waited theirs: they go at the first flush that can take them."""
    from urllib.parse import urlsplit, urlunsplit

    from orchestrator.db.engine import Database
    from tests.tcp_proxy import TcpProxy

    if db.engine.dialect.name != "postgresql":
        pytest.skip("cuts the database with a TCP proxy in front of PostgreSQL")
    with LoopbackHTTPServer("ok") as server:
        iid = open_for(db, add_component(db, "api", server.url, plan=None), "api")
    with db.write() as session:
        events.record(session, iid, "blocked", AT, reason="guard flapping")
    url = urlsplit(db.engine.url.render_as_string(hide_password=False))
    proxy = TcpProxy(url.hostname, url.port or 5432)
    cut_db = Database(urlunsplit(url._replace(netloc=url.netloc.replace(f":{url.port or 5432}", f":{proxy.port}"))))
    try:
        clock, outbox = FakeClock(AT), Outbox()
        notifier = Notifier(cut_db, config(events=["blocked"], group_window="30s"), clock=clock, sender=outbox)
        assert notifier.collect() == 1
        clock.advance(30)
        proxy.cut()
        notifier.flush()
        assert outbox.sent == []  # not taken: not sent (another process may send it)
        proxy.restore()
        clock.advance(2)  # the next flush tick
        notifier.flush()
        assert [t for t, _ in outbox.sent] == ["[BLOCKED] api: guard flapping"], "it waited a second window"
    finally:
        proxy.cut()
        cut_db.dispose()
