"""The report's pictures against hand-computed figures on a fixture history, on both databases.

The history is tests.test_reports.seed (transitions with a maintenance day, incidents, journal rows,
rollups) plus one more rollup for a second latency point. Every SVG of the HTML report must parse as
XML, and the numbers it encodes (segment ends and widths, colours, lanes, line points, bar values and
widths) must be the ones worked out below from that history; the Markdown report's tables carry the
same figures as text.
"""

from __future__ import annotations

import re
from datetime import timedelta
from xml.etree import ElementTree

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.db.engine import Database
from orchestrator.db.models import CheckRollup, Component
from orchestrator.reports.charts import NOT_JUDGED, STATE_COLOURS, SVG_NS
from orchestrator.reports.model import build_report
from orchestrator.reports.render import render_html, render_markdown
from orchestrator.web.app import create_app
from orchestrator.web.source import DatabaseSource
from tests.test_reports import DAY, HOUR, MINUTE, NOW, seed

WINDOW = 30 * DAY
START = NOW - WINDOW
NS = {"svg": SVG_NS}
#: availability bar: 600 wide, 18 high; judged lane 70 %, holds lane the bottom 25 %
BAR_W, LANE_H, HOLDS_Y, HOLDS_H = 600.0, 12.6, 13.5, 4.5
#: line chart plot area (720 x 180 with a 60 px axis on the left, 20 below, 8 above and right)
PLOT_LEFT, PLOT_TOP, PLOT_W, PLOT_H = 60.0, 8.0, 652.0, 152.0
#: bar charts: labels take 140 px, 60 px are left for the total, so the largest row is 520 px long
BARS_LEFT, BARS_W = 140.0, 520.0

#: web's 30 days: (state, start, end) — up, 1 h down, up, a maintenance day, up, 30 min flapping, up
WEB_SEGMENTS = [
    ("up", START, NOW - 10 * DAY), ("down", NOW - 10 * DAY, NOW - 10 * DAY + HOUR),
    ("up", NOW - 10 * DAY + HOUR, NOW - 5 * DAY), ("maintenance", NOW - 5 * DAY, NOW - 4 * DAY),
    ("up", NOW - 4 * DAY, NOW - 2 * DAY), ("flapping", NOW - 2 * DAY, NOW - 2 * DAY + 30 * MINUTE),
    ("up", NOW - 2 * DAY + 30 * MINUTE, NOW),
]
#: api: registered 20 days ago; up, down its last day, unknown from its last check + 3 intervals + 10 s
API_STALE = NOW - HOUR + timedelta(seconds=40)
API_SEGMENTS = [("up", NOW - 20 * DAY, NOW - DAY), ("down", NOW - DAY, API_STALE), ("unknown", API_STALE, NOW)]


@pytest.fixture
def history(db: Database) -> Database:
    seed(db)
    with db.write() as s:  # a second latency point, 4 days before the first: api's checks 5 days ago
        api_id = s.query(Component.id).filter_by(name="api").scalar()
        s.add(CheckRollup(component_id=api_id, minute=NOW - 5 * DAY + 3 * HOUR, checks=4, failures=0,
                          latency_p50_ms=40.0, latency_p95_ms=80.0, latency_max_ms=90.0))
    return db


def _report(db: Database):
    return build_report(db, WINDOW.total_seconds(), clock=FakeClock(NOW))


def _svgs(html: str) -> dict[str, ElementTree.Element]:
    """Every <svg> of the page parsed as XML, by its aria-label."""
    found = re.findall(r"<svg\b.*?</svg>", html, flags=re.DOTALL)
    assert found
    parsed = [ElementTree.fromstring(text) for text in found]
    return {svg.get("aria-label"): svg for svg in parsed}


def _frac(at) -> float:
    return (at - START) / WINDOW


def _assert_timeline(svg: ElementTree.Element, expected) -> None:
    background, *pieces = svg.findall("svg:rect", NS)
    assert (background.get("fill"), float(background.get("width"))) == (NOT_JUDGED, BAR_W)
    got = [(r.get("data-state"), r.get("data-start"), r.get("data-end")) for r in pieces]
    assert got == [(state, a.isoformat(), b.isoformat()) for state, a, b in expected]
    for rect, (state, a, b) in zip(pieces, expected, strict=True):
        assert float(rect.get("data-seconds")) == (b - a).total_seconds()
        assert rect.get("fill") == STATE_COLOURS[state]
        assert float(rect.get("x")) == pytest.approx(_frac(a) * BAR_W, abs=0.01)
        assert float(rect.get("width")) == pytest.approx((b - a) / WINDOW * BAR_W, abs=0.01)
        on_holds_lane = state in ("maintenance", "paused")
        assert (float(rect.get("y")), float(rect.get("height"))) == ((HOLDS_Y, HOLDS_H) if on_holds_lane
                                                                     else (0.0, LANE_H))


def test_availability_timelines_show_each_state_and_maintenance_apart(history: Database) -> None:
    svgs = _svgs(render_html(_report(history)))
    _assert_timeline(svgs["availability of web"], WEB_SEGMENTS)
    _assert_timeline(svgs["availability of api"], API_SEGMENTS)
    _assert_timeline(svgs["availability of cache"], [("unknown", START, NOW)])  # never checked
    # the maintenance day: 500 px in, 20 px wide, on the thin lane; nothing judged over it on the top lane
    maintenance = svgs["availability of web"].find("svg:rect[@data-state='maintenance']", NS)
    assert (maintenance.get("x"), maintenance.get("width"), maintenance.get("fill")) == ("500", "20", "#0969da")
    judged = [r for r in svgs["availability of web"].findall("svg:rect[@data-state]", NS) if r.get("y") == "0"]
    assert not any(float(r.get("x")) < 520 and float(r.get("x")) + float(r.get("width")) > 500 for r in judged)


def _points(polyline: ElementTree.Element) -> list[float]:
    """The polyline's coordinates, flat: x0, y0, x1, y1, ..."""
    return [float(v) for pair in polyline.get("points").split() for v in pair.split(",")]


def test_latency_chart_from_the_rollups(history: Database) -> None:
    svgs = _svgs(render_html(_report(history)))
    chart = svgs["check latency, per 1d"]
    lines = {p.get("data-series"): p for p in chart.findall("svg:polyline", NS)}
    # daily buckets from the window's start: api's 4 checks 5 days ago; web's 2 x 6 checks in the last hour
    day_25, day_29 = (NOW - 5 * DAY).isoformat(), (NOW - DAY).isoformat()
    assert lines["p50"].get("data-values") == f"{day_25}=40 {day_29}=15"  # (10*6 + 20*6) / 12
    assert lines["p95"].get("data-values") == f"{day_25}=80 {day_29}=30"  # (20*6 + 40*6) / 12
    top = 80.0  # the y axis runs from 0 to the largest value
    x25, x29 = PLOT_LEFT + 25 / 30 * PLOT_W, PLOT_LEFT + 29 / 30 * PLOT_W
    for name, (v25, v29) in (("p50", (40, 15)), ("p95", (80, 30))):
        expected = [x25, PLOT_TOP + PLOT_H * (1 - v25 / top), x29, PLOT_TOP + PLOT_H * (1 - v29 / top)]
        assert _points(lines[name]) == pytest.approx(expected, abs=0.01)
    assert [t.text for t in chart.findall("svg:text", NS)][:3] == ["0 ms", "40 ms", "80 ms"]


def _bars(svg: ElementTree.Element) -> list[tuple[str, str, float, float, float, str]]:
    return [(r.get("data-row"), r.get("data-part"), float(r.get("data-value")), float(r.get("x")),
             float(r.get("width")), r.get("fill")) for r in svg.findall("svg:rect", NS)]


def test_mttr_over_time_and_strategy_bars(history: Database) -> None:
    svgs = _svgs(render_html(_report(history)))
    # resolved in the window: the auto one (1 h) 10 days ago, the mass outage (2 h) 3 days ago, the
    # self-recovered one (30 min) 2 days ago; one bar per day, the longest 520 px
    assert _bars(svgs["mean time to recover per 1d"]) == [
        ("2026-02-19 (1)", "s MTTR", 3600, BARS_LEFT, 260, "#0969da"),
        ("2026-02-26 (1)", "s MTTR", 7200, BARS_LEFT, 520, "#0969da"),
        ("2026-02-27 (1)", "s MTTR", 1800, BARS_LEFT, 130, "#0969da"),
    ]
    # executed attempts: restart failed then succeeded (verified); notify succeeded once (never verified);
    # the skipped restart did not run. The longest row (2) is 520 px, so one attempt is 260 px
    strategies = svgs["executed attempts by strategy: succeeded, failed, other"]
    assert _bars(strategies) == [
        ("notify", "succeeded", 1, BARS_LEFT, 260, "#1a7f37"),
        ("restart", "succeeded", 1, BARS_LEFT, 260, "#1a7f37"),
        ("restart", "failed", 1, BARS_LEFT + 260, 260, "#cf222e"),
    ]
    assert [t.text for t in strategies.findall("svg:text", NS)] == ["notify", "1", "restart", "2"]


def test_markdown_tables_carry_the_same_figures(history: Database) -> None:
    text = render_markdown(_report(history))
    rows = {line for line in text.splitlines() if line.startswith("| ")}
    assert {
        "| web | 2026-02-19 00:00:00 UTC | 2026-02-19 01:00:00 UTC | down | 1h |",
        "| web | 2026-02-24 00:00:00 UTC | 2026-02-25 00:00:00 UTC | maintenance | 1d |",
        "| web | 2026-02-27 00:00:00 UTC | 2026-02-27 00:30:00 UTC | flapping | 30m |",
        "| api | 2026-02-28 00:00:00 UTC | 2026-02-28 23:00:40 UTC | down | 23h |",
        "| api | 2026-02-28 23:00:40 UTC | 2026-03-01 00:00:00 UTC | unknown | 59m 20s |",
        "| cache | 2026-01-30 00:00:00 UTC | 2026-03-01 00:00:00 UTC | unknown | 30d |",
        "| 2026-02-24 00:00:00 UTC | 4 | 40.0 ms | 80.0 ms | 90.0 ms |",
        "| 2026-02-28 00:00:00 UTC | 12 | 15.0 ms | 30.0 ms | 50.0 ms |",
        "| 2026-02-19 00:00:00 UTC | 1 | 1h |",
        "| 2026-02-26 00:00:00 UTC | 1 | 2h |",
        "| 2026-02-27 00:00:00 UTC | 1 | 30m |",
        "| notify | 1 | 1 | 0 | 0 |",
        "| restart | 2 | 1 | 1 | 1 |",
    } <= rows
    availability = text.split("## Availability", 1)[1].split("## Latency", 1)[0]
    timeline_rows = [line for line in availability.splitlines() if line.startswith("| ") and "UTC" in line]
    assert len(timeline_rows) == 6  # only time not up is listed: 3 for web, 2 for api, 1 for cache


def test_the_report_page_draws_the_same_pictures(history: Database) -> None:
    app = create_app(DatabaseSource(history, clock=FakeClock(NOW)))
    page = app.test_client().get("/report?since=30d")
    assert page.status_code == 200
    on_page = {label: ElementTree.tostring(svg) for label, svg in _svgs(page.get_data(as_text=True)).items()}
    in_file = {label: ElementTree.tostring(svg) for label, svg in _svgs(render_html(_report(history))).items()}
    assert on_page == in_file and len(on_page) == 6  # 3 timelines, latency, MTTR, strategies
