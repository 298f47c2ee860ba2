"""Maintenance windows and silences: the schedule across DST changes (an injected clock, moved), the
hold they put on the components their selector picks (registry sync → judge → recorder, real
database), silences muting notifications only, and bad input refused naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.components.windows import Window, WindowKind, WindowRequest, WindowService, silenced
from orchestrator.core.clock import FakeClock
from orchestrator.core.errors import InputError
from orchestrator.core.labels import parse_selector
from orchestrator.core.states import ComponentState as S
from orchestrator.db.models import AuditEntry, Component, Notification
from orchestrator.health.sync import RegistrySync
from orchestrator.incidents.notifier import Notifier
from orchestrator.recovery.snapshot import hold_of
from tests.conftest import snapshot
from tests.test_judge import Plane
from tests.test_notifier import Outbox, config, event
from tests.test_recovery_support import add_component, open_for


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


SUNDAY_2AM_BERLIN = Window(1, WindowKind.MAINTENANCE, parse_selector("team=core"), cron="0 2 * * SUN",
                           duration_s=7200, tz="Europe/Berlin")


@pytest.mark.parametrize("now, until", [
    # a normal Sunday in winter: 02:00 CET is 01:00 UTC
    ("2026-03-22T00:59", None), ("2026-03-22T01:00", "2026-03-22T03:00"), ("2026-03-22T02:59", "2026-03-22T03:00"),
    ("2026-03-22T03:00", None),
    # clocks go forward at 02:00: the start that does not exist opens at 03:00 CEST (01:00 UTC), for 2 h
    ("2026-03-29T00:59", None), ("2026-03-29T01:00", "2026-03-29T03:00"), ("2026-03-29T03:00", None),
    # summer: 02:00 CEST is 00:00 UTC
    ("2026-04-05T00:00", "2026-04-05T02:00"), ("2026-04-05T02:00", None),
    # clocks go back at 03:00 CEST: 02:00 happens twice, the window opens once (the first, 00:00 UTC)
    ("2026-10-24T23:59", None), ("2026-10-25T00:00", "2026-10-25T02:00"), ("2026-10-25T01:30", "2026-10-25T02:00"),
    ("2026-10-25T02:00", None), ("2026-10-25T02:30", None),
    # winter again: 02:00 CET is 01:00 UTC
    ("2026-11-01T00:59", None), ("2026-11-01T01:00", "2026-11-01T03:00"),
])
def test_a_weekly_window_in_berlin_across_both_dst_changes(now: str, until: str | None) -> None:
    got = SUNDAY_2AM_BERLIN.active_until(_utc(now))
    assert got == (None if until is None else _utc(until))


def test_next_start_skips_the_repeated_hour() -> None:
    assert SUNDAY_2AM_BERLIN.next_start(_utc("2026-10-25T00:30")) == _utc("2026-11-01T01:00")
    assert SUNDAY_2AM_BERLIN.next_start(_utc("2026-03-28T12:00")) == _utc("2026-03-29T01:00")


def _state(plane: Plane, cid: int) -> tuple[str, str | None]:
    plane.recorder.flush_now()
    with plane.db.read() as session:
        row = session.get(Component, cid)
        return row.state, row.state_reason


def _sync(plane: Plane, sync: RegistrySync, at: str) -> None:
    plane.clock.step_wall((_utc(at) - plane.clock.now()).total_seconds())
    sync.sync()
    plane.judge.drain()


def test_a_recurring_window_holds_the_selected_components_across_the_dst_change(db) -> None:
    """The daemon's path: registry sync (injected clock) → Hold → judge → tracker → recorder → row;
    the recovery guard then names the window. A component outside the selector is untouched."""
    plane = Plane(db)
    plane.clock.step_wall((_utc("2026-10-24T22:00") - plane.clock.now()).total_seconds())
    Registry(db).add(ComponentSpec(name="api", url="http://127.0.0.1:9/", labels={"team": "core"}))
    Registry(db).add(ComponentSpec(name="web", url="http://127.0.0.1:9/", labels={"team": "web"}))
    with db.read() as session:
        api, web = (session.scalar(sa.select(Component.id).where(Component.name == n)) for n in ("api", "web"))
    sync = RegistrySync(db, plane.judge, clock=plane.clock)
    sync.sync()
    plane.judge.drain()
    window = WindowService(db, clock=plane.clock).add(WindowRequest(
        WindowKind.MAINTENANCE, "team=core", cron="0 2 * * SUN", duration_s=7200, tz="Europe/Berlin",
        reason="kernel updates"))
    _sync(plane, sync, "2026-10-24T23:59")
    assert _state(plane, api)[0] == "unknown"
    _sync(plane, sync, "2026-10-25T00:00")  # 02:00 CEST, the first of the two
    state, reason = _state(plane, api)
    assert state == "maintenance"
    assert reason == f"maintenance: window {window['id']} until 2026-10-25 02:00 UTC, recurring: kernel updates"
    assert _state(plane, web)[0] == "unknown"
    with db.read() as session:
        row = session.get(Component, api)
        assert hold_of(row, plane.clock.now()) == f"in {reason}"  # no action, and it says why
    _sync(plane, sync, "2026-10-25T01:30")  # 02:30 CET, the second time that wall time happens: still the one window
    assert _state(plane, api)[0] == "maintenance"
    _sync(plane, sync, "2026-10-25T02:00")  # two hours elapsed, though the wall clock says 03:00 only once
    assert _state(plane, api) == ("unknown", None)  # held no more: judged afresh
    _sync(plane, sync, "2026-10-25T02:30")
    assert _state(plane, api)[0] == "unknown"
    _sync(plane, sync, "2026-11-01T01:00")  # a week later, 02:00 CET
    assert _state(plane, api)[0] == "maintenance"
    WindowService(db, clock=plane.clock).remove(WindowKind.MAINTENANCE, window["id"])
    _sync(plane, sync, "2026-11-01T01:01")
    assert _state(plane, api) == ("unknown", None)  # held no more: judged afresh


def test_a_silence_mutes_notifications_only_and_records_them(db) -> None:
    core = add_component(db, "core1", "http://127.0.0.1:9/", plan=None, labels={"team": "core"})
    web = add_component(db, "web1", "http://127.0.0.1:9/", plan=None, labels={"team": "web"})
    muted, sent = open_for(db, core, "core1"), open_for(db, web, "web1")
    clock, outbox = FakeClock(datetime.now(UTC)), Outbox()
    silence = WindowService(db, clock=clock).add(WindowRequest(WindowKind.SILENCE, "team=core", for_s=4 * 3600,
                                                               reason="migration"))
    notifier = Notifier(db, config(), clock=clock, sender=outbox, silences=silenced)
    notifier.publish(event("opened", muted, "core"))  # components "core1" and "web1"
    notifier.publish(event("opened", sent, "web"))
    assert notifier.flush(force=True) == 1
    [(title, body)] = outbox.sent
    assert "web1" in title and "core1" not in body
    with db.read() as session:
        rows = {(n.incident_id, n.status, n.channel) for n in session.scalars(sa.select(Notification))}
    assert (muted, "silenced", f"silence:{silence['id']}") in rows
    assert (sent, "sent", "http://127.0.0.1:9/hook?token=***") in rows
    # over: notifications flow again
    clock.advance(4 * 3600)
    notifier.publish(event("resolved", muted, "core"))
    assert notifier.flush(force=True) == 1 and "core1" in outbox.sent[-1][0]


def test_add_and_remove_are_audited(db) -> None:
    service = WindowService(db)
    view = service.add(WindowRequest(WindowKind.SILENCE, "team=core", for_s=60))
    service.remove(WindowKind.SILENCE, view["id"])
    with db.read() as session:
        actions = [(a.action, a.target) for a in session.scalars(sa.select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == [("silence-add", f"silence:{view['id']}"), ("silence-remove", f"silence:{view['id']}")]


@pytest.mark.parametrize("kind, given, field", [
    (WindowKind.MAINTENANCE, {"selector": "team"}, "selector"),
    (WindowKind.MAINTENANCE, {"selector": "team=core", "cron": "0 2 * *", "duration_s": 60}, "cron"),
    (WindowKind.MAINTENANCE, {"selector": "team=core", "cron": "* * * * * *", "duration_s": 60}, "cron"),
    (WindowKind.MAINTENANCE, {"selector": "team=core", "cron": "0 2 * * SUN"}, "duration"),
    (WindowKind.MAINTENANCE, {"selector": "team=core", "cron": "0 2 * * SUN", "duration_s": 60, "tz": "Mars/Base"}, "tz"),
    (WindowKind.MAINTENANCE, {"selector": "team=core", "cron": "0 2 * * SUN", "duration_s": 60, "for_s": 60}, "cron"),
    (WindowKind.MAINTENANCE, {"selector": "team=core", "duration_s": 60, "end": "2026-12-31T00:00"}, "duration"),
    (WindowKind.MAINTENANCE, {"selector": "team=core"}, "end"),
    (WindowKind.MAINTENANCE, {"selector": "team=core", "end": "tomorrow"}, "end"),
    (WindowKind.MAINTENANCE, {"selector": "team=core", "end": "2020-01-01T00:00"}, "end"),
    (WindowKind.MAINTENANCE, {"selector": "team=core", "start": "2099-01-02T00:00", "end": "2099-01-01T00:00"}, "end"),
    (WindowKind.MAINTENANCE, {"selector": "team=core", "for_s": 4000 * 86400}, "for"),
    (WindowKind.MAINTENANCE, {"selector": "team=core", "cron": "0 0 31 4 *", "duration_s": 60}, "cron"),  # never
    (WindowKind.SILENCE, {"selector": "team=core", "cron": "0 2 * * SUN", "duration_s": 60}, "cron"),
    (WindowKind.SILENCE, {"selector": "team=core", "for_s": 60, "end": "2099-01-01T00:00"}, "for"),
    (WindowKind.SILENCE, {"selector": "team=core", "for_s": 60, "reason": "two\nlines"}, "reason"),
])
def test_bad_windows_are_refused_naming_the_field_and_change_nothing(db, kind, given, field) -> None:
    before = snapshot(db)
    with pytest.raises(InputError) as caught:
        WindowService(db).add(WindowRequest(kind, **given))
    assert caught.value.field == field
    assert snapshot(db) == before


@pytest.mark.parametrize("args, flag", [
    (["maintenance", "add", "--selector", "team", "--for", "1h"], "--selector"),
    (["maintenance", "add", "--selector", "team=core", "--cron", "0 2 * *", "--duration", "2h"], "--cron"),
    (["maintenance", "add", "--selector", "team=core", "--cron", "0 2 * * SUN"], "--duration"),
    (["maintenance", "add", "--selector", "team=core", "--cron", "0 2 * * SUN", "--duration", "2h", "--tz", "X/Y"],
     "--tz"),
    (["maintenance", "add", "--selector", "team=core", "--duration", "soon"], "--duration"),
    (["maintenance", "add", "--selector", "team=core", "--start", "2099-01-02", "--end", "2099-01-01"], "--end"),
    (["maintenance", "add", "--cron", "0 2 * * SUN", "--duration", "2h"], "--selector"),
    (["maintenance", "remove", "99"], "ID"),
    (["maintenance", "remove", "x"], "ID"),
    (["silence", "add", "--selector", "team=core"], "--end"),
    (["silence", "add", "--selector", "team=core", "--for", "-1h"], "--for"),
    (["silence", "add", "--selector", "team=core", "--for", "1h", "--cron", "0 2 * * *"], "--cron"),
    (["silence", "remove", "1"], "ID"),  # window 1 is the maintenance window: not a silence
])
def test_bad_cli_input_exits_2_naming_the_flag_and_changes_nothing(run_cli, db, args, flag) -> None:
    assert run_cli("maintenance", "add", "--selector", "team=core", "--cron", "0 2 * * SUN", "--duration", "2h",
                   "--tz", "Europe/Berlin").exit_code == 0
    before = snapshot(db)
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and flag in lines[-1] and "Traceback" not in result.output, result.stderr
    assert snapshot(db) == before


def test_cli_round_trip_and_component_show(run_cli) -> None:
    assert run_cli("component", "add", "api", "--url", "http://127.0.0.1:9/", "--label", "team=core").exit_code == 0
    added = run_cli("maintenance", "add", "--selector", "team=core", "--for", "2h", "--reason", "disk swap", "--json")
    assert added.exit_code == 0, added.output
    window = json.loads(added.stdout)
    assert window["active"] and window["selector"] == "team=core" and not window["recurring"]
    silenced = json.loads(run_cli("silence", "add", "--selector", "team=core", "--for", "4h", "--json").stdout)
    shown = json.loads(run_cli("component", "show", "api", "--json").stdout)
    assert [(w["id"], w["kind"], w["reason"]) for w in shown["windows"]] == [
        (window["id"], "maintenance", "disk swap"), (silenced["id"], "silence", None)]
    assert [w["id"] for w in json.loads(run_cli("maintenance", "list", "--json").stdout)] == [window["id"]]
    assert "disk swap" in run_cli("maintenance", "list").stdout
    assert run_cli("maintenance", "remove", str(window["id"])).exit_code == 0
    assert run_cli("silence", "remove", str(silenced["id"])).exit_code == 0
    assert json.loads(run_cli("component", "show", "api", "--json").stdout)["windows"] == []
    assert json.loads(run_cli("maintenance", "list", "--json").stdout) == []


def test_window_for_a_component_that_answers_badly_opens_no_incident(db) -> None:
    """A component failing inside its window: counted, not judged DOWN (existing maintenance semantics)."""
    plane = Plane(db)
    plane.clock.step_wall((_utc("2026-12-06T00:30") - plane.clock.now()).total_seconds())
    cid = plane.add()
    with db.write() as session:
        session.get(Component, cid).labels = {"team": "core"}
    WindowService(db, clock=plane.clock).add(WindowRequest(WindowKind.MAINTENANCE, "team=core", for_s=3600))
    sync = RegistrySync(db, plane.judge, clock=plane.clock)
    sync.sync()
    plane.judge.drain()
    for _ in range(4):
        plane.result(cid, False)
    assert plane.live.state(cid) is S.MAINTENANCE
    assert _state(plane, cid)[0] == "maintenance"
    plane.clock.step_wall(3600)
    sync.sync()
    plane.judge.drain()
    assert plane.live.state(cid) is S.UNKNOWN

