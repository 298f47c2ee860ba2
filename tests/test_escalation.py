"""Escalation policies and routing through the real webhook receiver: routes by labels, criticality and
event to named targets; reminders while nobody acknowledges; a second tier; ``ack`` stops them; every
reminder and tier on the incident's timeline; a restart neither loses nor doubles one; a wall clock
step does not fire one early (injected clock, no sleeps)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.core.errors import PlanError
from orchestrator.db.engine import Database
from orchestrator.incidents import operator
from orchestrator.incidents.notifier import Notifier
from orchestrator.incidents.routing import Notifications
from orchestrator.plans import parse_plans
from orchestrator.web.app import create_app
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.servers import LoopbackHTTPServer, wait_for
from tests.test_notify_delivery import receiver  # noqa: F401 (the real webhook receiver, a fixture)
from tests.test_recovery_support import add_component

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _config(url: str, **kw) -> Notifications:
    hook = url.rsplit("/", 1)[0]
    return Notifications.model_validate({
        "webhooks": [{"url": f"{hook}/default"}], "group_window": "1s",
        "targets": {"core": {"webhooks": [{"url": f"{hook}/core"}]},
                    "pager": {"webhooks": [{"url": f"{hook}/pager"}]},
                    "managers": {"webhooks": [{"url": f"{hook}/managers"}]}}, **kw})


def _open(db: Database, name: str, url: str, clock: FakeClock, **fields) -> int:
    from orchestrator.incidents.lifecycle import open_incident

    cid = add_component(db, name, url, plan=None, **fields)
    with db.write() as session:
        return open_incident(session, component_id=cid, component_name=name, at=clock.now(), reason="down").incident_id


def _sent(got: list[dict]) -> list[tuple[str, str]]:
    """(path, event) of every delivery so far, oldest first."""
    return [(r["path"], json.loads(r["body"])["event"]) for r in got[1:]]


def _flush(notifier: Notifier, got: list[dict], expect: int) -> list[tuple[str, str]]:
    notifier.flush(force=True)
    assert wait_for(lambda: len(got) - 1 >= expect, 5), _sent(got)
    return _sent(got)


def test_routes_send_events_by_labels_criticality_and_event_to_named_targets(db, receiver) -> None:  # noqa: F811
    clock = FakeClock(AT)
    config = _config(receiver[0]["url"], routes=[
        {"match": {"team": "core"}, "targets": ["core"]},
        {"criticality": ["critical"], "events": ["opened"], "targets": ["pager"]},
    ])
    with LoopbackHTTPServer("ok") as server:
        _open(db, "api", server.url, clock, labels={"team": "core"}, criticality="critical")
        _open(db, "batch", server.url, clock, labels={"team": "data"})
        notifier = Notifier(db, config, clock=clock)
        sent = _flush(notifier, receiver, 2)
    # api: its team route and the critical-opened route, in one message; batch: no route, the default targets
    assert sorted(sent) == [("/core", "opened"), ("/default", "opened"), ("/pager", "opened")]
    bodies = {r["path"]: json.loads(r["body"]) for r in receiver[1:]}
    assert bodies["/core"]["component"] == "api" and bodies["/default"]["component"] == "batch"


def test_reminders_then_a_second_tier_until_ack_each_on_the_timeline(db, receiver) -> None:  # noqa: F811
    clock = FakeClock(AT)
    config = _config(receiver[0]["url"], events=["opened"],
                     escalation={"remind_every": "5m", "tiers": [{"after": "12m", "targets": ["managers"]}]})
    with LoopbackHTTPServer("ok") as server:
        incident_id = _open(db, "api", server.url, clock)
    notifier = Notifier(db, config, clock=clock)
    assert _flush(notifier, receiver, 1) == [("/default", "opened")]
    clock.advance(299)
    notifier.flush(force=True)
    assert len(receiver) == 2  # not yet: 5 minutes have not passed
    clock.advance(1)
    assert _flush(notifier, receiver, 2)[-1] == ("/default", "reminder")
    clock.advance(300)
    assert _flush(notifier, receiver, 3)[-1] == ("/default", "reminder")
    clock.advance(120)  # 12 minutes unacknowledged: the second tier (the first hears of it too)
    assert sorted(_flush(notifier, receiver, 5)[-2:]) == [("/default", "escalation"), ("/managers", "escalation")]
    clock.advance(180)  # reminder 3 goes to the default targets and to the tier reached
    assert sorted(_flush(notifier, receiver, 7)[-2:]) == [("/default", "reminder"), ("/managers", "reminder")]

    operator.ack(db, incident_id, clock=clock)
    for _ in range(3):
        clock.advance(300)
        notifier.flush(force=True)
    assert len(receiver) == 8, _sent(receiver)  # ack stops them
    kinds = [(e["kind"], e["reason"]) for e in operator.show_incident(db, incident_id)["events"]]
    assert [k for k, _ in kinds] == ["opened", "reminder", "reminder", "escalation", "reminder"]
    assert kinds[1][1] == "reminder 1: open for 5 min, not acknowledged"
    assert kinds[3][1] == "tier 1: not acknowledged 12 min after opening; telling managers"
    page = create_app(DatabaseSource(db, clock=clock), WebSettings()).test_client().get(f"/incidents/{incident_id}")
    text = page.get_data(as_text=True)
    assert text.count("reminder sent") == 3 and "escalated to the next tier" in text and "telling managers" in text


def test_tiers_without_reminders_escalate_once_per_tier_then_stay_quiet(db, receiver) -> None:  # noqa: F811
    clock = FakeClock(AT)
    config = _config(receiver[0]["url"], events=[], escalation={"tiers": [
        {"after": "10m", "targets": ["core"]}, {"after": "20m", "targets": ["managers"]}]})
    with LoopbackHTTPServer("ok") as server:
        incident_id = _open(db, "api", server.url, clock)
    notifier = Notifier(db, config, clock=clock)
    notifier.flush(force=True)
    clock.advance(600)
    assert sorted(_flush(notifier, receiver, 2)) == [("/core", "escalation"), ("/default", "escalation")]
    clock.advance(600)
    sent = _flush(notifier, receiver, 5)[2:]  # tier 2: the default, tier 1's and tier 2's targets
    assert sorted(sent) == [("/core", "escalation"), ("/default", "escalation"), ("/managers", "escalation")]
    for _ in range(3):
        clock.advance(600)
        notifier.flush(force=True)
    assert len(receiver) == 6
    assert [e["kind"] for e in operator.show_incident(db, incident_id)["events"]] == ["opened", "escalation",
                                                                                     "escalation"]


def test_a_restart_neither_loses_nor_doubles_a_reminder(db, receiver) -> None:  # noqa: F811
    clock = FakeClock(AT)
    config = _config(receiver[0]["url"], events=[], escalation={"remind_every": "5m"})
    with LoopbackHTTPServer("ok") as server:
        incident_id = _open(db, "api", server.url, clock)
    first = Notifier(db, config, clock=clock)
    first.flush(force=True)  # arms it (durably)
    clock.advance(300)
    assert _flush(first, receiver, 1) == [("/default", "reminder")]
    # a second process (a restart) at the same moment: the reminder is not sent again
    second = Notifier(db, config, clock=FakeClock(clock.now()))
    second.flush(force=True)
    assert len(receiver) == 2
    # the daemon was stopped over the next reminder's time: the next process sends it, once
    later = FakeClock(clock.now())
    later.advance(900)
    third = Notifier(db, config, clock=later)
    assert _flush(third, receiver, 2) == [("/default", "reminder")] * 2
    third.flush(force=True)
    assert len(receiver) == 3
    reasons = [e["reason"] for e in operator.show_incident(db, incident_id)["events"] if e["kind"] == "reminder"]
    assert reasons == ["reminder 1: open for 5 min, not acknowledged", "reminder 4: open for 20 min, not acknowledged"]


def test_a_wall_clock_step_forward_does_not_fire_a_reminder_early(db, receiver) -> None:  # noqa: F811
    clock = FakeClock(AT)
    config = _config(receiver[0]["url"], events=[], escalation={
        "remind_every": "5m", "tiers": [{"after": "30m", "targets": ["managers"]}]})
    with LoopbackHTTPServer("ok") as server:
        _open(db, "api", server.url, clock)
    notifier = Notifier(db, config, clock=clock)
    notifier.flush(force=True)
    clock.step_wall(3600)  # the wall jumps an hour; only 0 s passed on the monotonic clock
    notifier.flush(force=True)
    assert len(receiver) == 1
    clock.advance(300)
    assert _flush(notifier, receiver, 1) == [("/default", "reminder")]
    clock.advance(300)
    assert _flush(notifier, receiver, 2) == [("/default", "reminder")] * 2
    # each reminder is decided at its own time: no tier reached early, no reminder skipped or doubled
    [incident] = operator.list_incidents(db)
    events = operator.show_incident(db, incident["id"])["events"]
    assert [e["reason"] for e in events if e["kind"] == "reminder"] == [
        "reminder 1: open for 5 min, not acknowledged", "reminder 2: open for 10 min, not acknowledged"]
    assert "escalation" not in [e["kind"] for e in events]


@pytest.mark.parametrize(("notifications", "message"), [
    ({"routes": [{"targets": ["nobody"]}]}, "routes[0].targets: no target named 'nobody'"),
    ({"routes": [{"events": ["exploded"], "targets": ["t"]}], "targets": {"t": {}}}, "unknown event 'exploded'"),
    ({"escalation": {"remind_every": "0s"}}, "remind_every"),
    ({"escalation": {"tiers": [{"after": "10m", "targets": ["t"]}, {"after": "5m", "targets": ["t"]}]},
      "targets": {"t": {}}}, "increasing"),
    ({"escalation": {"remind": "5m"}}, "remind"),
    ({"routes": [{"criticality": ["urgent"], "targets": ["t"]}], "targets": {"t": {}}}, "criticality"),
], ids=["unknown-target", "unknown-event", "zero-interval", "tiers-out-of-order", "unknown-key", "bad-criticality"])
def test_bad_escalation_settings_are_refused_naming_the_field(notifications, message) -> None:
    document = {"version": 1, "plans": {}, "notifications": notifications}
    with pytest.raises(PlanError) as caught:
        parse_plans(document, "plans.json")
    assert "notifications" in str(caught.value) and message in str(caught.value)


def test_the_daemon_sends_reminders_of_an_incident_its_check_opened(db, db_url, receiver, tmp_path) -> None:  # noqa: F811
    from tests.daemon_helpers import poll, running_daemon

    hook = receiver[0]["url"].rsplit("/", 1)[0]
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"version": 1, "plans": {}, "notifications": {
        "webhooks": [{"url": f"{hook}/default"}], "events": ["opened"], "group_window": "1s",
        "escalation": {"remind_every": "1s"}}}))
    with LoopbackHTTPServer("500") as server:
        add_component(db, "api", server.url, plan=None, failure_threshold=1)
        with running_daemon(db_url, plans_path=plans):
            poll(lambda: "reminder" in _event_kinds(receiver), 30)
    [incident] = operator.list_incidents(db, component="api")
    kinds = [e["kind"] for e in operator.show_incident(db, incident["id"])["events"]]
    assert "reminder" in kinds and "opened" in _event_kinds(receiver)


def _event_kinds(got: list[dict]) -> set[str]:
    """Every event kind delivered so far (a digest lists several)."""
    return {e["event"] for r in got[1:] for e in json.loads(r["body"])["events"]}
