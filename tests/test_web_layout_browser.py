"""The operator pages and the public status page in real headless Chromium at 1400 and 400 px wide: no
horizontal overflow, charts present with their hover titles, labels never broken mid-word, badge texts
inside their boxes, and the maintenance form working once logged in (refused before).

Served by the real web server (``orchestrator web``'s) over a seeded SQLite database; skipped without
chromium like tests/test_web_browser.py (failed instead with ORCHESTRATOR_TEST_BROWSER=required).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.components import statuspages
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from orchestrator.db.models import CheckResultRow, CheckRollup, Component, Incident, StateTransition
from orchestrator.web import server
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.daemon_helpers import poll
from tests.test_reports import _step
from tests.test_web_browser import _driver

TOKEN = "layout-browser-token"
WIDTHS = (1400, 400)


def _seed(db: Database, now: datetime) -> None:
    """Three components with long names and labels; api with 20 minutes of rollups and 40 checks, one of
    them failed; cache in maintenance; a public status page over them."""
    with db.write() as s:
        rows = {}
        for name in ("api", "checkout-service-with-a-rather-long-name", "cache"):
            row = Component(name=name, url=f"http://127.0.0.1:9/{name}/health?with=a&long=query&string=1234567890",
                            created_at=now - timedelta(days=40), updated_at=now, state="up", state_since=now - timedelta(days=2),
                            labels={"team": "core", "gamma": "100%", "owner": "payments-and-billing-platform"},
                            last_check_at=now, last_latency_ms=12.5, interval_s=10.0,
                            last_error="connection refused by a very long host name.example.internal:8443 after 3 tries")
            if name == "cache":
                row.maintenance_until = now + timedelta(hours=1)
            s.add(row)
            s.flush()
            rows[name] = row.id
        s.add(StateTransition(component_id=rows["api"], at=now - timedelta(days=3), from_state="up", to_state="down"))
        s.add(StateTransition(component_id=rows["api"], at=now - timedelta(days=3) + timedelta(minutes=30),
                              from_state="down", to_state="up"))
        for minute in range(20):
            s.add(CheckRollup(component_id=rows["api"], minute=(now - timedelta(minutes=minute + 1)).replace(second=0, microsecond=0),
                              checks=6, failures=0, latency_p50_ms=10.0 + minute, latency_p95_ms=20.0 + 2 * minute))
        incident = Incident(component_name="api", component_id=rows["api"], opened_at=now - timedelta(hours=1),
                            updated_at=now, status="escalated", reason="connection refused " * 12, plan="web")
        s.add(incident)
        s.flush()
        s.add(_step(incident, 0, 1, "notify", "succeeded", True, finished_at=now, detail="sent to ops@example.com",
                    output="x" * 400, verification={"mode": "none", "passed": False, "reason": "never verified"}))
        for i in range(40):
            s.add(CheckResultRow(component_id=rows["api"], checked_at=now - timedelta(seconds=10 * (40 - i)), ok=i != 30,
                                 latency_ms=11.0 + i, error=None if i != 30 else "timed out"))
    statuspages.add(db, statuspages.page_spec("public", "Example status", [
        statuspages.parse_group("Checkout and payment APIs=api:Public API,checkout-service-with-a-rather-long-name"),
        statuspages.parse_group("Storage=cache")]))


def _overflow(driver) -> int:
    """How many px the document is wider than the window (0: no horizontal scrolling)."""
    return driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")


def _component_state(base: str, name: str) -> str:
    with urllib.request.urlopen(f"{base}api/v1/components/{name}", timeout=5) as response:
        return json.loads(response.read())["state"]


def test_pages_fit_charts_answer_and_maintenance_works_after_login(tmp_path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'layout.db'}")
    ensure_schema(database)
    _seed(database, datetime.now(UTC))
    profile = Path(tempfile.mkdtemp(prefix="chromium-"))
    driver = _driver(profile)
    web = server.start(DatabaseSource(database), "127.0.0.1:0", WebSettings(token=TOKEN, refresh_s=30))
    base = web.url
    try:
        for width in WIDTHS:
            driver.set_window_size(width, 900)
            for path in ("", "components/api", "components/api?range=1h", "components/api?range=30d",
                         "components/cache", "status/public", "incidents/1", "report"):
                driver.get(base + path)
                assert _overflow(driver) <= 0, (width, path, _overflow(driver))
                # a label is one box on one line: never broken inside a word
                for label in driver.find_elements("css selector", ".label"):
                    assert label.size["height"] < 22, (width, path, label.text, label.size)
            driver.get(base)
            assert len(driver.find_elements("css selector", "tr[data-component] svg.chart")) == 6  # bar + spark
            assert driver.find_element("css selector", 'tr[data-component="api"]').text.count("%") >= 3
            driver.get(base + "components/api?range=1h")
            chart = driver.find_element("css selector", 'svg[aria-label="latency of api, 1h"]')
            assert chart.size["width"] <= width and len(chart.find_elements("css selector", "polyline")) == 2
            hovers = chart.find_elements("css selector", "rect.hover title")
            assert len(hovers) == 20 and "p50" in hovers[0].get_attribute("textContent")
            # the axis is fitted to the 20 minutes present: the first point sits at the left edge
            first = chart.find_element("css selector", "polyline").get_attribute("points").split()[0]
            assert abs(float(first.split(",")[0]) - 60) < 1
            beats = driver.find_elements("css selector", "rect.beat")
            assert len(beats) == 40 and len(driver.find_elements("css selector", "rect.beat.failed")) == 1
            assert "timed out" in driver.find_element("css selector", "rect.beat.failed title").get_attribute("textContent")
            assert [e.text for e in driver.find_elements("css selector", "#uptime .fig")][0].endswith("24h")
            driver.get(base + "status/public")
            assert len(driver.find_elements("css selector", "svg.bars rect")) == 3 * 90
            assert driver.find_elements("css selector", "script") == []
        # badge texts fit their boxes by the glyphs' own widths (textLength taken away to measure them)
        for url in ("badge/api/status.svg", "badge/api/uptime/24h.svg", "badge/cache/status.svg"):
            driver.get(base + url)
            fits = driver.execute_script(
                "const rects = document.querySelectorAll('rect'); return [...document.querySelectorAll('text')]"
                ".map((t, i) => { t.removeAttribute('textLength'); return [t.getComputedTextLength(),"
                " rects[i].width.baseVal.value]; });")
            assert all(0 < text_w <= box_w - 8 for text_w, box_w in fits), (url, fits)
        # the maintenance form: refused before login, ends the window after it, starts one again
        driver.set_window_size(400, 900)
        driver.get(base + "components/cache")
        end = '//button[text()="end maintenance"]'
        driver.find_element("xpath", end).click()
        assert "log in first" in poll(lambda: driver.find_elements("id", "error"), 10)[0].text
        assert _component_state(base, "cache") == "maintenance"
        driver.get(base + "login?next=/components/cache")
        driver.find_element("id", "password").send_keys(TOKEN)  # the legacy token: user left empty
        driver.find_element("id", "login-button").click()
        poll(lambda: driver.find_elements("xpath", end), 10)
        form = driver.find_element("xpath", end + "/..")
        assert form.find_elements("css selector", "input:not([type=hidden])") == []  # no stray text box
        driver.find_element("xpath", end).click()
        poll(lambda: _component_state(base, "cache") != "maintenance", 10)
        field = poll(lambda: driver.find_elements("css selector", 'input[name="for"][placeholder="for: 1h"]'), 10)[0]
        field.send_keys("30m")
        driver.find_element("xpath", '//button[text()="maintenance"]').click()
        poll(lambda: _component_state(base, "cache") == "maintenance", 10)
        assert _overflow(driver) <= 0
    finally:
        web.stop()
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        database.dispose()
