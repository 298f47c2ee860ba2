"""`orchestrator report`: figures computed from seeded history, each format, escaping, redaction, CLI.

History is seeded through the models on both backends; the expected figures are worked out by hand.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.db.engine import Database
from orchestrator.db.models import (
    CheckResultRow,
    CheckRollup,
    Component,
    Incident,
    JournalEntry,
    Notification,
    StateTransition,
)
from orchestrator.reports.charts import SVG_NS
from orchestrator.reports.model import build_report
from orchestrator.reports.render import human_duration, render, report_dict
from orchestrator.reports.uptime import Change, time_in_states

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
HOSTILE = "<script>alert(1)</script>"
SECRETS = ("hunter2", "abc123", "sekret-token-value")


def _component(name: str, created: datetime, **kw) -> Component:
    return Component(name=name, url="http://127.0.0.1:1/health", created_at=created, updated_at=created, **kw)


def _incident(name, cid, opened, resolved=None, **kw) -> Incident:
    return Incident(component_name=name, component_id=cid, opened_at=opened, updated_at=resolved or opened,
                    resolved_at=resolved, status="resolved" if resolved else "open", **kw)


def _step(incident: Incident, step: int, attempt: int, strategy: str, status: str, executed: bool, **kw):
    return JournalEntry(incident_id=incident.id, component_id=incident.component_id, step_index=step, attempt=attempt,
                        strategy=strategy, status=status, executed=executed, claimed_at=incident.opened_at, **kw)


def seed(db: Database, now: datetime = NOW) -> None:
    """web: down 1h, maintenance 1d, flapping 30m in the last 30d; api: down for its last day, then
    unwatched for the last hour; cache: never checked. Four incidents in the window, one before it."""
    with db.write() as s:
        web = _component("web", now - 60 * DAY, labels={"team": "payments"}, interval_s=10.0, state="up",
                         last_check_at=now - timedelta(seconds=5))
        api = _component("api", now - 20 * DAY, interval_s=10.0, state="down", last_check_at=now - HOUR)
        s.add_all([web, api, _component("cache", now - 60 * DAY)])
        s.flush()
        for cid, at, old, new in [
            (web.id, now - 40 * DAY, "unknown", "up"), (web.id, now - 10 * DAY, "up", "down"),
            (web.id, now - 10 * DAY + HOUR, "down", "up"), (web.id, now - 5 * DAY, "up", "maintenance"),
            (web.id, now - 4 * DAY, "maintenance", "up"), (web.id, now - 2 * DAY, "up", "flapping"),
            (web.id, now - 2 * DAY + 30 * MINUTE, "flapping", "up"),
            (api.id, now - 20 * DAY, "unknown", "up"), (api.id, now - DAY, "up", "down"),
        ]:
            s.add(StateTransition(component_id=cid, at=at, from_state=old, to_state=new, reason="checks"))
        m0 = (now - HOUR).replace(second=0, microsecond=0)
        s.add_all([
            CheckRollup(component_id=web.id, minute=m0, checks=6, failures=1, latency_p50_ms=10.0,
                        latency_p95_ms=20.0, latency_max_ms=30.0),
            CheckRollup(component_id=web.id, minute=m0 + MINUTE, checks=6, failures=0, latency_p50_ms=20.0,
                        latency_p95_ms=40.0, latency_max_ms=50.0),
            CheckRollup(component_id=web.id, minute=now - 40 * DAY, checks=99, failures=99),  # before the window
        ])
        tail = (now - 2 * MINUTE).replace(second=0, microsecond=0)
        for at, ok, ms, reliable in [
            (m0 + timedelta(seconds=10), True, 999.0, True),  # already in the first rollup
            (tail + timedelta(seconds=1), True, 5.0, True), (tail + timedelta(seconds=11), False, 100.0, True),
            (tail + timedelta(seconds=21), True, 7.0, True), (tail + timedelta(seconds=31), False, 900.0, False),
        ]:
            s.add(CheckResultRow(component_id=web.id, checked_at=at, ok=ok, latency_ms=ms, reliable=reliable))
        i1 = _incident("web", web.id, now - 10 * DAY, now - 10 * DAY + HOUR, resolution="auto", plan="web",
                       reason="GET https://user:hunter2@web.example/health?token=abc123 failed")
        i2 = _incident("web", web.id, now - 2 * DAY, now - 2 * DAY + 30 * MINUTE, resolution="self")
        i3 = _incident("api", api.id, now - DAY, reason=HOSTILE, plan="api", escalated_at=now - DAY + HOUR)
        i3.status = "escalated"
        i4 = _incident(None, None, now - 3 * DAY, now - 3 * DAY + 2 * HOUR, resolution="manual", kind="mass_outage",
                       reason="12 of 20 down | likely the network")
        old = _incident("web", web.id, now - 45 * DAY, now - 45 * DAY + 10 * MINUTE, resolution="auto")
        s.add_all([i1, i2, i3, i4, old])
        s.flush()
        passed = {"mode": "check", "passed": True, "reason": "healthy 2 times in a row"}
        s.add_all([
            _step(i1, 0, 1, "restart", "failed", True, detail="exit 1",
                  output="Authorization: Bearer sekret-token-value\n"),
            _step(i1, 0, 2, "restart", "succeeded", True, detail="restarted", verification=passed),
            _step(i3, 0, 1, "restart", "skipped", False, skip_reason="component is paused"),
            _step(i3, 1, 1, "notify", "succeeded", True, detail=HOSTILE,
                  verification={"mode": "none", "passed": False, "reason": "this strategy is never verified"}),
            _step(old, 0, 1, "restart", "succeeded", True, verification=passed),
        ])
        for incident, n in ((i1, 2), (i3, 1), (old, 1)):
            s.add_all(Notification(incident_id=incident.id, event="opened", channel="json://hooks", status="sent",
                                   created_at=incident.opened_at) for _ in range(n))


def test_time_in_states_splits_the_window_and_clips_changes_outside_it() -> None:
    changes = [Change(NOW - 5 * HOUR, "unknown", "up"), Change(NOW - HOUR, "up", "down"),
               Change(NOW + HOUR, "down", "up")]
    times = time_in_states("unknown", changes, NOW - 2 * HOUR, NOW)
    assert (times.up_s, times.down_s, times.unknown_s) == (3600.0, 3600.0, 0.0)
    assert times.uptime_pct == 50.0
    assert time_in_states("paused", [], NOW - HOUR, NOW).uptime_pct is None


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (3.27, "3.3s"), (59, "59s"), (3725, "1h 2m"),
                                               (82840, "23h"), (90061, "1d 1h")])
def test_human_duration(seconds, text) -> None:
    assert human_duration(seconds) == text


def test_figures_from_a_constructed_history(db: Database) -> None:
    seed(db)
    report = build_report(db, 30 * DAY.total_seconds(), clock=FakeClock(NOW))
    web, api, cache = (next(c for c in report.components if c.name == n) for n in ("web", "api", "cache"))
    judged_h = 29 * 24  # the window minus the day in maintenance
    assert (web.times.down_s, web.times.flapping_s, web.times.maintenance_s) == (3600.0, 1800.0, 86400.0)
    assert web.uptime_pct == pytest.approx(100 * (judged_h - 1.5) / judged_h)
    # api: registered 20 days ago, down for its last day, unwatched since its last check + 3 intervals + 10s
    assert api.times.down_s == 23 * 3600 + 40 and api.times.unknown_s == 3600 - 40
    assert api.uptime_pct == pytest.approx(100 * 19 * 86400 / (19 * 86400 + 23 * 3600 + 40))
    assert cache.uptime_pct is None and cache.checks.checks == 0
    # checks: two rollups (12 checks) + the raw tail (3 reliable results, one failed)
    assert (web.checks.checks, web.checks.failures, web.checks.latency_max_ms) == (15, 2, 100.0)
    assert web.checks.latency_p50_ms == pytest.approx((10 * 6 + 20 * 6 + 7 * 3) / 15)
    assert web.checks.latency_p95_ms == pytest.approx((20 * 6 + 40 * 6 + 100 * 3) / 15)
    assert (web.incidents, web.mttr_s, api.incidents, api.mttr_s) == (2, 2700.0, 1, None)
    t = report.totals
    assert dict(t.by_resolution) == {"auto": 1, "self": 1, "manual": 1, "removed": 0, "unresolved": 1}
    assert (t.incidents, t.actions_executed, t.actions_verified, t.escalations, t.mass_outages) == (4, 3, 1, 1, 1)
    assert t.mttr_s == (3600 + 1800 + 7200) / 3
    first = next(i for i in report.incidents if i.component == "web" and i.resolution == "auto")
    assert first.notifications == 2 and [s.status for s in first.steps] == ["failed", "succeeded"]
    assert first.steps[1].verification == "check passed: healthy 2 times in a row"


def test_component_filter_and_unknown_component(db: Database) -> None:
    seed(db)
    report = build_report(db, 30 * DAY.total_seconds(), component="api", clock=FakeClock(NOW))
    assert [c.name for c in report.components] == ["api"] and [i.component for i in report.incidents] == ["api"]
    assert report.incidents[0].steps[0].detail == "component is paused"
    from orchestrator.core.errors import NotFoundError

    with pytest.raises(NotFoundError):
        build_report(db, 60, component="nope", clock=FakeClock(NOW))


@pytest.mark.parametrize("fmt", ["html", "markdown", "json", "csv"])
def test_every_format_renders_escaped_and_redacted(db: Database, fmt: str) -> None:
    seed(db)
    with db.write() as s:
        s.add(_component(HOSTILE, NOW - DAY, labels={"owner": "<b>x</b>"}))
    text = render(build_report(db, 30 * DAY.total_seconds(), clock=FakeClock(NOW)), fmt)
    for secret in SECRETS:
        assert secret not in text, (fmt, secret)
    if fmt == "html":
        assert HOSTILE not in text and "<b>x</b>" not in text and "<script" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        # no external assets (the SVG namespace is a name, never fetched)
        assert "http" not in text.replace("https://user:***@web.example", "").replace(f'xmlns="{SVG_NS}"', "")
    elif fmt == "markdown":
        assert HOSTILE not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "| web | up | 99.784% |" in text
        assert "not verified (this strategy is never verified)" in text
        assert all(line.count(" | ") in (0, 2, 4, 10, 9, 8, 6, 7) for line in text.splitlines() if line.startswith("| "))
    elif fmt == "json":
        data = json.loads(text)
        assert data["version"] == 1 and data["totals"]["by_resolution"]["unresolved"] == 1
        assert {i["reason"] for i in data["incidents"]} >= {HOSTILE}
        web = next(c for c in data["components"] if c["name"] == "web")
        assert web["time_s"]["down"] == 3600 and web["labels"] == {"team": "payments"}
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 4 and {r["resolution"] or "-" for r in rows} == {"auto", "self", "manual", "-"}
        auto = next(r for r in rows if r["resolution"] == "auto")
        assert (auto["duration_s"], auto["actions_executed"], auto["actions_verified"]) == ("3600.000", "2", "1")


def test_report_dict_is_plain_json(db: Database) -> None:
    seed(db)
    data = report_dict(build_report(db, 30 * DAY.total_seconds(), clock=FakeClock(NOW)))
    assert json.loads(json.dumps(data)) == data
    assert data["since"] == (NOW - 30 * DAY).isoformat() and data["component"] is None


def test_cli_writes_each_format_and_the_output_file(run_cli, db: Database, tmp_path: Path, monkeypatch) -> None:
    seed(db, datetime.now(UTC))
    result = run_cli("report", "--since", "30d", "--format", "json", "-o", "-")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["totals"]["incidents"] == 4
    out = tmp_path / "report.html"
    result = run_cli("report", "--component", "web", "-o", str(out))
    assert result.exit_code == 0 and result.stdout.strip() == str(out)
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "Recovery report: web" in html
    assert run_cli("report", "--format", "csv", "-o", "-").stdout.startswith("id,component,kind")
    monkeypatch.chdir(tmp_path)  # without -o: a new file in the current directory, its path printed
    result = run_cli("report", "--format", "markdown")
    written = Path(result.stdout.strip())
    assert result.exit_code == 0 and written.suffix == ".md" and (tmp_path / written).read_text().startswith("# ")
    unwritable = run_cli("report", "-o", str(tmp_path / "missing" / "r.html"))
    assert unwritable.exit_code == 2 and unwritable.output.startswith("error: --output: cannot write"), \
        unwritable.output


@pytest.mark.parametrize("args", [["--component", "nope"], ["--since", "soon"], ["--since", "0"],
                                  ["--format", "pdf"]])
def test_cli_bad_input_exits_2_with_one_line(run_cli, db: Database, args: list[str]) -> None:
    seed(db, datetime.now(UTC))
    result = run_cli("report", *args)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
