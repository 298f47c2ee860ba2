"""`orchestrator report` on push monitors (last ping, last success, its duration, next expected) and on
incidents alerts opened (the alert's name and runbook link), in every format, on both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, PushPing
from orchestrator.reports.model import build_report
from orchestrator.reports.render import render, report_dict

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
