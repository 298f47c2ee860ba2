"""Defects seen on the operator pages (issue 19): the EMERGENCY banner, a notify step shown red, badge
boxes narrower than their text, the latency chart's fixed 24 h and its axis, uptime figures."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.db.audit import Actor
from orchestrator.db.engine import Database
from orchestrator.db.models import CheckRollup, Component, Incident, StateTransition
from orchestrator.degradation import store
from orchestrator.degradation.service import DegradationService
from orchestrator.degradation.signals import FleetSignals
from orchestrator.web import chartmodels
from orchestrator.web.app import create_app
from orchestrator.web.badge_metrics import text_width
from orchestrator.web.badges import PAD_PX, badge_svg
from orchestrator.web.pagemodels import verification_line
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.test_degradation_service import POLICY, FakeLive
from tests.test_reports import _step

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def _component(db: Database, name: str = "api", **kw) -> int:
    with db.write() as s:
        row = Component(name=name, url="http://127.0.0.1:9/", created_at=NOW - timedelta(days=40), updated_at=NOW,
                        state="up", last_check_at=NOW, interval_s=10.0, **kw)
        s.add(row)
        s.flush()
        return row.id


def test_the_emergency_banner_names_the_override_once_in_utc(db: Database) -> None:
    clock = FakeClock(NOW)
    _component(db)
    service = DegradationService(db, FakeLive({}), FleetSignals(clock), policy=POLICY, clock=clock)
    service.evaluate()
    store.set_override(db, "global", "emergency", 3600, "failover drill", actor=Actor("alice", "ops1", "cli"),
                       clock=clock)
    service.evaluate()
    html = create_app(DatabaseSource(db, clock=clock), WebSettings()).test_client().get("/").get_data(as_text=True)
    banner = html.split('id="degradation"')[1].split("</section>")[0]
    assert "global: EMERGENCY" in banner
    assert banner.count("failover drill") == 1 and banner.count("alice@ops1") == 1
    assert "automation FROZEN by this override" in banner
    assert not re.search(r"\d\d:\d\dZ", banner)  # times read "UTC" everywhere on the page
    assert "2026-12-07 13:00:00 UTC" in banner


def test_a_notify_step_that_is_never_verified_is_not_shown_failed(db: Database) -> None:
    line = verification_line({"mode": "none", "passed": False, "reason": "this strategy is never verified"})
    assert line == {"text": "not verified (this strategy is never verified)", "passed": None}
    cid = _component(db)
    with db.write() as s:
        incident = Incident(component_name="api", component_id=cid, opened_at=NOW, updated_at=NOW, status="open")
        s.add(incident)
        s.flush()
        s.add(_step(incident, 0, 1, "notify", "succeeded", True, finished_at=NOW,
                    verification={"mode": "none", "passed": False, "reason": "this strategy is never verified"}))
        incident_id = incident.id
    client = create_app(DatabaseSource(db, clock=FakeClock(NOW)), WebSettings()).test_client()
    html = client.get(f"/incidents/{incident_id}").get_data(as_text=True)
    assert '<div class="small muted">not verified (this strategy is never verified)</div>' in html
    assert "not passed" not in html


@pytest.mark.parametrize("label, value", [("api", "gamma"), ("uptime 24h", "100%"), ("uptime 30d", "99.95%"),
                                          ("WWWWWWWW", "mmmmmmmm"), ("iiiiiiii", "1111")])
def test_badge_boxes_come_from_glyph_widths(label: str, value: str) -> None:
    root = ET.fromstring(badge_svg(label, value, "#4c1"))
    rects = root.findall(f"{SVG}rect")
    texts = root.findall(f"{SVG}g/{SVG}text")
    for text, rect, measured in zip(texts, rects, (text_width(label), text_width(value)), strict=True):
        box = int(rect.get("width"))
        assert measured <= box - 2 * PAD_PX < measured + 1  # the box is the text's own width, rounded up
        assert int(text.get("textLength")) == box - 2 * PAD_PX
    assert text_width("WWWW") > text_width("iiii") * 2  # widths per glyph, not per character count


def _rollups(db: Database, cid: int, minutes: int) -> None:
    with db.write() as s:
        for m in range(minutes):
            s.add(CheckRollup(component_id=cid, minute=NOW - timedelta(minutes=minutes - m), checks=6, failures=0,
                              latency_p50_ms=10.0 + m, latency_p95_ms=30.0 + m))


@pytest.mark.parametrize("range_key", list(chartmodels.LATENCY_RANGES))
def test_latency_range_starts_at_the_data_present_and_keeps_few_points(db: Database, range_key: str) -> None:
    cid = _component(db)
    _rollups(db, cid, 20)
    with db.read() as session:
        chart = chartmodels.latency(session, cid, NOW, range_key)
    p50 = dict(chart["series"])["p50"]
    assert chart["start"] == p50[0][0] and NOW - chart["start"] <= timedelta(minutes=20)
    assert p50[-1][0] <= NOW - timedelta(minutes=1) and len(p50) <= 20
    if range_key == "1h":  # one point a minute: the values as stored
        assert [v for _t, v in p50] == [10.0 + m for m in range(20)]


def test_latency_range_is_a_query_parameter_and_a_bad_one_is_400(db: Database) -> None:
    cid = _component(db)
    _rollups(db, cid, 90)
    client = create_app(DatabaseSource(db, clock=FakeClock(NOW)), WebSettings()).test_client()
    page = client.get("/components/api?range=1h").get_data(as_text=True)
    assert '<b class="range current">1h</b>' in page and 'href="?range=7d#latency"' in page
    assert page.count('class="hover"') == 60  # one hover column per minute of the last hour
    assert "2026-12-07 11:59 UTC: p50 99 ms, p95 119 ms" in page
    bad = client.get("/components/api?range=2h", headers={"Accept": "application/json"})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "range"


def test_uptime_windows_cut_one_timeline(db: Database) -> None:
    """Down 1 h two days ago and 3 h twenty days ago: 24 h 100 %, 7 d and 30 d below it by those hours."""
    cid = _component(db)
    with db.write() as s:
        for start, hours in ((NOW - timedelta(days=2), 1), (NOW - timedelta(days=20), 3)):
            s.add(StateTransition(component_id=cid, at=start, from_state="up", to_state="down"))
            s.add(StateTransition(component_id=cid, at=start + timedelta(hours=hours), from_state="down", to_state="up"))
    with db.read() as session:
        figures = chartmodels.uptimes(session, [cid], NOW)[cid]
    assert figures["24h"] == 100.0
    assert figures["7d"] == pytest.approx(100 * (1 - 1 / (7 * 24)))
    assert figures["30d"] == pytest.approx(100 * (1 - 4 / (30 * 24)))
    client = create_app(DatabaseSource(db, clock=FakeClock(NOW)), WebSettings()).test_client()
    row = client.get("/").get_data(as_text=True).split('data-component="api"')[1].split("</tr>")[0]
    assert 'data-window="7d">99.40%' in row and 'data-window="30d">99.44%' in row
