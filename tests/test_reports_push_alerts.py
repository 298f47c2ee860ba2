"""`orchestrator report` on push monitors (last ping, last success, its duration, next expected) and on
incidents alerts opened (the alert's name and runbook link), in every format, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, PushPing
from orchestrator.reports.history import AlertReport
from orchestrator.reports.model import build_report
from orchestrator.reports.render import render, report_dict
from tests.servers import LoopbackHTTPServer
from tests.test_alerts import AT, BEARER, RUNBOOK, _client, am_body
from tests.test_recovery_support import add_component, open_for

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
HOUR, MINUTE = timedelta(hours=1), timedelta(minutes=1)


def seed_push(db: Database) -> None:
    """backup: hourly push monitor, a run 2h ago (start, success after 90 s), then a fail (exit 3) 30 min ago;
    nightly: a cron monitor never pinged; web: a polled component."""
    with db.write() as s:
        backup = Component(name="backup", url=None, check_kind="push", check_spec={"period_s": 3600.0, "grace_s": 300.0},
                           created_at=NOW - 24 * HOUR, updated_at=NOW - 24 * HOUR)
        nightly = Component(name="nightly", url=None, check_kind="push",
                            check_spec={"schedule": "0 3 * * *", "tz": "Europe/Berlin"},
                            created_at=NOW - 24 * HOUR, updated_at=NOW - 24 * HOUR)
        web = Component(name="web", url="http://127.0.0.1:1/health", created_at=NOW - 24 * HOUR,
                        updated_at=NOW - 24 * HOUR)
        s.add_all([backup, nightly, web])
        s.flush()
        start = NOW - 2 * HOUR
        s.add_all([
            PushPing(component_id=backup.id, received_at=start, kind="start", judged=True),
            PushPing(component_id=backup.id, received_at=start + timedelta(seconds=90), kind="success", exit_status=0,
                     duration_s=90.0, judged=True),
            PushPing(component_id=backup.id, received_at=NOW - 30 * MINUTE, kind="fail", exit_status=3, judged=True),
        ])


def test_push_monitors_in_the_report_model_and_json(db: Database) -> None:
    seed_push(db)
    report = build_report(db, 86400, clock=FakeClock(NOW))
    backup, nightly, web = (next(c for c in report.components if c.name == n) for n in ("backup", "nightly", "web"))
    assert web.push is None
    success = NOW - 2 * HOUR + timedelta(seconds=90)
    assert (backup.push.last_ping_at, backup.push.last_ping_kind, backup.push.last_exit_status) == (
        NOW - 30 * MINUTE, "fail", 3)
    assert (backup.push.last_success_at, backup.push.last_duration_s) == (success, 90.0)
    assert (backup.push.next_expected_at, backup.push.grace_s) == (success + HOUR, 300.0)
    # never pinged: due at the schedule's next run after its creation (03:00 Berlin = 02:00 UTC in March)
    assert nightly.push.last_ping_at is None and nightly.push.last_success_at is None
    assert nightly.push.next_expected_at == datetime(2026, 3, 1, 2, tzinfo=UTC)
    data = json.loads(render(report, "json"))
    pushed = {c["name"]: c["push"] for c in data["components"]}
    assert pushed["web"] is None and pushed["nightly"]["last_ping_at"] is None
    assert pushed["backup"] == {"last_ping_at": (NOW - 30 * MINUTE).isoformat(), "last_ping_kind": "fail",
                                "last_exit_status": 3, "last_success_at": success.isoformat(),
                                "last_duration_s": 90.0, "next_expected_at": (success + HOUR).isoformat(),
                                "grace_s": 300.0}
    assert json.loads(json.dumps(report_dict(report))) == report_dict(report)


def test_push_monitors_in_markdown_and_html(db: Database) -> None:
    seed_push(db)
    report = build_report(db, 86400, clock=FakeClock(NOW))
    markdown = render(report, "markdown")
    assert "## Push monitors" in markdown
    assert ("| backup | 2026-03-01 11:30:00 UTC fail (exit 3) | 2026-03-01 10:01:30 UTC | 1m 30s "
            "| 2026-03-01 11:01:30 UTC + 5m grace |") in markdown
    assert "| nightly | - | - | - | 2026-03-01 02:00:00 UTC + 1h grace |" in markdown
    assert "| web |" not in markdown.split("## Push monitors")[1].split("##")[0]
    html = render(report, "html")
    section = html.split("<h2>Push monitors</h2>")[1].split("</table>")[0]
    assert "backup" in section and "fail (exit 3)" in section and "1m 30s" in section
    assert "2026-03-01 11:01:30 UTC" in section and "web" not in section


def test_no_push_section_without_push_monitors(db: Database) -> None:
    with db.write() as s:
        s.add(Component(name="web", url="http://127.0.0.1:1/health", created_at=NOW, updated_at=NOW))
    report = build_report(db, 86400, clock=FakeClock(NOW))
    assert "Push monitors" not in render(report, "markdown") and "Push monitors" not in render(report, "html")


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_the_report_command_prints_push_monitors(run_cli, db: Database, fmt: str) -> None:
    seed_push(db)
    result = run_cli("report", "--since", "30d", "--format", fmt, "-o", "-")
    assert result.exit_code == 0, result.output
    assert "Push monitors" in result.output and "fail (exit 3)" in result.output


#: a runbook link with characters that would end a Markdown link or break its table row
ODD_RUNBOOK = "https://runbooks.example.com/a(b)|c"


def seed_alerts(db: Database) -> dict[str, int]:
    """api: an incident Alertmanager's alert opened (runbook link); ghost: an alert no component matches
    (an odd runbook link); a second no-component alert whose runbook is javascript:; web: a check's incident.
    Incident ids by name."""
    with LoopbackHTTPServer("ok") as server:
        add_component(db, "api", server.url)
        web = add_component(db, "web", server.url)
        client = _client(db)
        assert client.post("/api/v1/alerts/alertmanager", json=am_body("firing"), headers=BEARER).status_code == 202
        generic = {"alerts": [
            {"name": "Odd", "labels": {"component": "ghost"}, "annotations": {"runbook_url": ODD_RUNBOOK}},
            {"name": "Evil", "labels": {}, "annotations": {"runbook_url": "javascript:alert(document.cookie)"}}]}
        assert client.post("/api/v1/alerts", json=generic, headers=BEARER).status_code == 202
    ids = {"web": open_for(db, web, "web")}
    report = build_report(db, 7 * 86400, clock=FakeClock(AT + HOUR))
    for i in report.incidents:
        if i.alerts:
            ids[i.alerts[0].name] = i.id
    return ids


def test_incidents_alerts_opened_carry_the_alert_and_its_runbook_in_the_model_and_json(db: Database) -> None:
    ids = seed_alerts(db)
    report = build_report(db, 7 * 86400, clock=FakeClock(AT + HOUR))
    by_id = {i.id: i for i in report.incidents}
    api = by_id[ids["ApiDown"]]
    assert (api.component, api.source, api.alerts) == ("api", "alert", (AlertReport("ApiDown", "firing", RUNBOOK),))
    assert by_id[ids["Odd"]].alerts == (AlertReport("Odd", "firing", ODD_RUNBOOK),)
    assert by_id[ids["Evil"]].alerts == (AlertReport("Evil", "firing", None),)  # not an http(s) link
    assert (by_id[ids["web"]].source, by_id[ids["web"]].alerts) == ("check", ())
    data = {i["id"]: i for i in json.loads(render(report, "json"))["incidents"]}
    assert data[ids["ApiDown"]]["source"] == "alert"
    assert data[ids["ApiDown"]]["alerts"] == [{"name": "ApiDown", "status": "firing", "runbook_url": RUNBOOK}]
    assert data[ids["web"]]["alerts"] == [] and data[ids["web"]]["source"] == "check"


def test_markdown_and_html_show_the_alert_name_and_runbook_link(db: Database) -> None:
    ids = seed_alerts(db)
    report = build_report(db, 7 * 86400, clock=FakeClock(AT + HOUR))
    markdown = render(report, "markdown")
    section = markdown.split("### Alerts behind incidents")[1]
    assert f"| {ids['ApiDown']} | api | ApiDown | firing | [runbook]({RUNBOOK}) |" in section
    assert f"| {ids['Odd']} | no component | Odd | firing | [runbook](https://runbooks.example.com/a%28b%29%7Cc) |" \
        in section
    assert f"| {ids['Evil']} | no component | Evil | firing | - |" in section
    assert "javascript" not in markdown and f"| {ids['web']} | web |" not in section
    html = render(report, "html")
    link = f'<a href="{RUNBOOK}" rel="noopener noreferrer">runbook</a>'
    assert f"alert ApiDown (firing) {link}" in html and f"<dt>Alerts</dt><dd>ApiDown (firing) {link}</dd>" in html
    assert 'href="javascript' not in html and "Evil (firing)</dd>" in html
    assert f"<h3>Incident {ids['Odd']}: no component " in html
    web = html.split(f'id="incident-{ids["web"]}"')[1].split("</article>")[0]
    assert "<dt>Alerts</dt>" not in web
