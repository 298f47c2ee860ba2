"""Public status pages: declared by CLI or file, served at /status/NAME and its Atom feed without login,
showing display names, states, daily uptime and public updates, and nothing private."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from orchestrator.components import statuspages
from orchestrator.core.clock import FakeClock
from orchestrator.db.engine import Database
from orchestrator.db.models import CheckRollup, Component, Incident, JournalEntry, Notification
from orchestrator.incidents.updates import add_update
from orchestrator.web.app import create_app
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.conftest import snapshot

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
TOKEN = "status-page-token-xyz"
#: planted in every private field; none may reach the public page or feed
MARKERS = ["MARKURL", "MARKHOST", "MARKLABEL", "MARKLABELVAL", "MARKVAR", "MARKERR", "MARKREASON", "MARKINCIDENT",
           "MARKSTATUSREASON", "MARKJOURNAL", "MARKOUTPUT", "MARKNOTIFY", "MARKPRIVATE", "MARKBACKUP", "MARKPLAN"]


def _seed(db: Database) -> dict[str, int]:
    """api (down, every private field marked, an incident), auth (up, 2 days of rollups), cache (in
    maintenance); a page "public" grouping them as API=api:REST API,auth and Storage=cache."""
    ids = {}
    with db.write() as s:
        for name, state in (("api", "down"), ("auth", "up"), ("cache", "up")):
            row = Component(name=name, url=f"http://MARKHOST.example:8080/MARKURL/{name}", created_at=NOW - timedelta(days=100),
                            updated_at=NOW, state=state, labels={"MARKLABEL": "MARKLABELVAL"}, vars={"unit": "MARKVAR"},
                            last_error="MARKERR connection refused", state_reason="MARKREASON",
                            backup_url="http://MARKBACKUP/", plan="markplan", last_check_at=NOW)
            if name == "cache":
                row.maintenance_until = NOW + timedelta(hours=2)
            s.add(row)
            s.flush()
            ids[name] = row.id
        for minute in range(60):  # yesterday: 60 checks, 3 failed; today: 60 checks, none failed
            s.add(CheckRollup(component_id=ids["auth"], minute=NOW - timedelta(days=1, minutes=minute), checks=1,
                              failures=1 if minute < 3 else 0, latency_p50_ms=5.0, latency_p95_ms=9.0))
            s.add(CheckRollup(component_id=ids["auth"], minute=NOW - timedelta(minutes=minute + 1), checks=1,
                              failures=0, latency_p50_ms=5.0, latency_p95_ms=9.0))
        incident = Incident(component_name="api", component_id=ids["api"], opened_at=NOW - timedelta(hours=1),
                            updated_at=NOW, status="escalated", reason="MARKINCIDENT", status_reason="MARKSTATUSREASON",
                            last_error="MARKERR", plan="markplan")
        old = Incident(component_name="api", component_id=ids["api"], opened_at=NOW - timedelta(days=3),
                       updated_at=NOW, status="resolved", resolution="manual", reason="MARKINCIDENT",
                       resolved_at=NOW - timedelta(days=3))
        s.add_all([incident, old])
        s.flush()
        ids["incident"], ids["old"] = incident.id, old.id
        s.add(JournalEntry(incident_id=incident.id, component_id=ids["api"], step_index=0, attempt=1, strategy="restart",
                           status="failed", executed=True, claimed_at=NOW, detail="MARKJOURNAL", output="MARKOUTPUT"))
        s.add(Notification(incident_id=incident.id, event="opened", channel="mailto", status="failed",
                           title="MARKNOTIFY", error="MARKNOTIFY", created_at=NOW))
    clock = FakeClock(NOW - timedelta(minutes=30))
    add_update(db, ids["incident"], "We are looking into errors on the API.", state="investigating", public=True,
               clock=clock)
    clock.advance(600)
    add_update(db, ids["incident"], "MARKPRIVATE internal: db01 disk full", state="identified", public=False,
               clock=clock)
    clock.advance(60)
    add_update(db, ids["incident"], "The cause is found; a fix is rolling out.", state="identified", public=True,
               clock=clock)
    add_update(db, ids["old"], "All fixed.", state="resolved", public=True, clock=FakeClock(NOW - timedelta(days=3)))
    spec = statuspages.page_spec("public", "Example status", [statuspages.parse_group("API=api:REST API,auth"),
                                                              statuspages.parse_group("Storage=cache")])
    statuspages.add(db, spec, clock=FakeClock(NOW - timedelta(days=5)))
    return ids


def _client(db: Database):
    return create_app(DatabaseSource(db, clock=FakeClock(NOW)), WebSettings(token=TOKEN)).test_client()


def test_the_page_and_feed_never_show_a_url_label_error_or_host(db: Database) -> None:
    _seed(db)
    client = _client(db)
    page = client.get("/status/public")
    feed = client.get("/status/public/feed.atom")
    assert page.status_code == 200 and feed.status_code == 200
    for body in (page.get_data(as_text=True), feed.get_data(as_text=True)):
        assert "REST API" in body  # the display name, as the page shows it
        leaked = [m for m in MARKERS if m.lower() in body.lower()]
        assert leaked == []


def test_the_page_shows_groups_states_bars_incidents_and_maintenance(db: Database) -> None:
    ids = _seed(db)
    response = _client(db).get("/status/public")
    html = response.get_data(as_text=True)
    assert "<script" not in html  # works without JavaScript
    assert 'id="overall"' in html and "Some systems are down" in html
    api_group = html.split('aria-label="API"')[1].split("</section>")[0]
    assert 'class="state t-outage">Outage' in api_group.split('class="component"')[0]  # the group: its worst member
    assert 'data-state="outage"' in api_group and 'data-state="operational"' in api_group
    yesterday = (NOW - timedelta(days=1)).strftime("%Y-%m-%d")
    assert f'data-day="{yesterday}"><title>{yesterday}: 95.00% up (60 checks, 3 failed)</title>' in html
    assert html.count("<rect") == 3 * 90
    assert "no data" in html  # days without rollups are not drawn as up
    active = html.split('id="active-incidents"')[1].split("</section>")[0]
    assert f'id="incident-{ids["incident"]}"' in active
    assert active.index("a fix is rolling out") < active.index("looking into errors")  # newest first
    past = html.split('id="past-incidents"')[1].split("</section>")[0]
    assert f'id="incident-{ids["old"]}"' in past and "All fixed." in past
    assert "<b>cache</b>: under maintenance until 2026-12-07 14:00:00 UTC" in html
    assert 'data-state="maintenance"' in html


def test_cache_headers_and_revalidation(db: Database) -> None:
    _seed(db)
    client = _client(db)
    for url in ("/status/public", "/status/public/feed.atom"):
        first = client.get(url)
        assert first.headers["Cache-Control"] == "public, max-age=30" and first.headers["ETag"]
        again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304 and again.get_data() == b""
    assert client.get("/status/public/feed.atom").headers["Last-Modified"] == "Mon, 07 Dec 2026 11:41:00 GMT"


def test_the_feed_is_atom_with_one_entry_per_public_update(db: Database) -> None:
    _seed(db)
    response = _client(db).get("/status/public/feed.atom")
    assert response.content_type == "application/atom+xml; charset=utf-8"
    ns = {"a": "http://www.w3.org/2005/Atom"}
    root = ET.fromstring(response.get_data())
    entries = root.findall("a:entry", ns)
    assert [e.findtext("a:title", namespaces=ns) for e in entries] == [
        "REST API: identified", "REST API: investigating", "REST API: resolved"]
    assert root.findtext("a:updated", namespaces=ns) == "2026-12-07T11:41:00+00:00"
    assert entries[0].find("a:link", ns).get("href").startswith("http://localhost/status/public#incident-")
    assert len({e.findtext("a:id", namespaces=ns) for e in entries}) == 3


def test_an_unknown_page_is_404_and_a_bad_name_400(db: Database) -> None:
    client = _client(db)
    assert client.get("/status/nope").status_code == 404
    assert client.get("/status/" + "x" * 64).status_code == 400


def test_cli_add_list_remove_and_refusals_change_nothing(run_cli, db_url: str) -> None:
    assert run_cli("component", "add", "api", "--url", "http://127.0.0.1:9/h").exit_code == 0
    assert run_cli("component", "add", "auth", "--url", "http://127.0.0.1:9/h").exit_code == 0
    added = run_cli("statuspage", "add", "public", "--title", "Example", "--group", "API=api:REST API,auth")
    assert added.exit_code == 0, added.output
    assert added.output.strip() == "status page public at /status/public (1 groups)"
    listed = json.loads(run_cli("statuspage", "list", "--json").output)
    assert listed[0]["groups"] == [{"name": "API", "components": [{"component": "api", "display": "REST API"},
                                                                   {"component": "auth", "display": "auth"}]}]
    db = Database(db_url)
    before = snapshot(db)
    for args, field in ((["--group", "API=nosuch"], "group"), (["--group", "API"], "--group"),
                        (["--group", "API=api", "--group", "API=auth"], "--group"), (["--group", "API=Bad Name"], "--group")):
        result = run_cli("statuspage", "add", "other", "--title", "T", *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and field in result.output
    assert run_cli("statuspage", "add", "public", "--title", "T", "--group", "A=api").exit_code == 2  # exists
    assert snapshot(db) == before
    assert run_cli("statuspage", "remove", "public").exit_code == 0
    assert run_cli("statuspage", "remove", "public").exit_code == 2
    assert json.loads(run_cli("statuspage", "list", "--json").output) == []
    db.dispose()


def test_apply_file_declares_pages_all_or_nothing(run_cli, db_url: str, tmp_path) -> None:
    good = tmp_path / "c.yaml"
    good.write_text("components:\n  - {name: api, url: 'http://127.0.0.1:9/h'}\n"
                    "status_pages:\n  - name: public\n    title: Example\n    groups: {API: ['api:REST API']}\n")
    result = run_cli("apply", "-f", str(good))
    assert result.exit_code == 0 and "+ status page public" in result.output, result.output
    assert "= status page" not in run_cli("apply", "-f", str(good)).output  # unchanged the second time
    bad = tmp_path / "bad.yaml"
    bad.write_text("components:\n  - {name: api, url: 'http://127.0.0.1:9/h'}\n  - {name: new, url: 'http://127.0.0.1:9/h'}\n"
                   "status_pages:\n  - name: public\n    title: Example\n    groups: {API: [api, ghost]}\n")
    db = Database(db_url)
    before = snapshot(db)
    refused = run_cli("apply", "-f", str(bad))
    assert refused.exit_code == 2 and "ghost" in refused.output
    assert snapshot(db) == before  # the component "new" was not written either
    db.dispose()
    bare = tmp_path / "bare.yaml"
    bare.write_text("components:\n  - {name: api, url: 'http://127.0.0.1:9/h'}\n")
    assert "status page" not in run_cli("apply", "-f", str(bare)).output  # no status_pages: pages left alone
    assert json.loads(run_cli("statuspage", "list", "--json").output)[0]["name"] == "public"
    pruned = run_cli("apply", "-f", str(bare), "--prune")
    assert pruned.exit_code == 0 and "- status page public" in pruned.output
    assert json.loads(run_cli("statuspage", "list", "--json").output) == []


def test_incident_update_by_cli_and_api(db: Database, run_cli, db_url: str) -> None:
    ids = _seed(db)
    result = run_cli("incidents", "update", str(ids["old"]), "Postmortem published.", "--public", "--state", "resolved")
    assert result.exit_code == 0 and "resolved update" in result.output and "publicly" in result.output
    private = run_cli("incidents", "update", str(ids["incident"]), "Paged the db team.", "--state", "monitoring")
    assert private.exit_code == 0 and "(private)" in private.output
    assert run_cli("incidents", "update", str(ids["incident"]), "x", "--state", "fixed").exit_code == 2
    assert run_cli("incidents", "update", "999999", "x").exit_code == 2
    client = _client(db)
    body = {"message": "Resolved: all requests succeed.", "state": "resolved", "public": True}
    url = f"/api/v1/incidents/{ids['incident']}/updates"
    assert client.post(url, json=body).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    bad = client.post(url, json={**body, "state": "done"}, headers=auth)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "state"
    assert client.post(url, json={**body, "message": "  "}, headers=auth).get_json()["error"]["field"] == "message"
    posted = client.post(url, json=body, headers=auth)
    assert posted.status_code == 201 and posted.get_json()["state"] == "resolved"
    html = client.get("/status/public").get_data(as_text=True)
    assert 'id="active-incidents"' not in html  # its newest public update says resolved
    past = html.split('id="past-incidents"')[1]
    assert "Resolved: all requests succeed." in past and "Postmortem published." in past
    assert "Paged the db team." not in html


def test_finished_days_are_reused_for_five_minutes_and_today_is_read_live(db: Database) -> None:
    ids = _seed(db)
    clock = FakeClock(NOW)
    client = create_app(DatabaseSource(db, clock=clock), WebSettings()).test_client()
    yesterday = (NOW - timedelta(days=1)).strftime("%Y-%m-%d")
    assert f"{yesterday}: 95.00% up (60 checks, 3 failed)" in client.get("/status/public").get_data(as_text=True)
    with db.write() as s:  # a late rollup for yesterday (a buffered write after an outage), and one for today
        s.add(CheckRollup(component_id=ids["auth"], minute=NOW - timedelta(days=1, hours=3), checks=40, failures=40))
        s.add(CheckRollup(component_id=ids["auth"], minute=NOW - timedelta(hours=3), checks=40, failures=40))
    html = client.get("/status/public").get_data(as_text=True)
    assert f"{yesterday}: 95.00% up" in html and "2026-12-07: 60.00% up (100 checks, 40 failed)" in html
    clock.advance(301)
    assert f"{yesterday}: 57.00% up (100 checks, 43 failed)" in client.get("/status/public").get_data(as_text=True)


def test_the_incident_page_posts_an_update_with_its_form_and_shows_it_in_the_timeline(db: Database) -> None:
    ids = _seed(db)
    client = _client(db)
    page = f"/incidents/{ids['incident']}"
    csrf = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/login", data={"token": TOKEN, "csrf_token": csrf}).status_code == 303
    html = client.get(page).get_data(as_text=True)
    assert 'id="update-form"' in html and "private update by" in html and "MARKPRIVATE" in html  # operators see all
    form = {"csrf_token": csrf, "next": page, "message": "Back to normal.", "state": "resolved", "public": "true"}
    assert client.post(f"/api/v1/incidents/{ids['incident']}/updates", data=form).status_code == 303
    assert "public update by api: resolved" in client.get(page).get_data(as_text=True)
    assert "Back to normal." in client.get("/status/public").get_data(as_text=True).split('id="past-incidents"')[1]


def test_scheduled_maintenance_ahead_is_announced_by_display_name_only(db: Database) -> None:
    """A maintenance window opening within two weeks over a page's components is listed under
    "Scheduled maintenance" with its times and the display names it covers; its selector and reason
    (the operator's words) never reach the page; one further out, or over no page component, is not."""
    from orchestrator.components.windows import WindowKind, WindowRequest, WindowService

    _seed(db)
    service = WindowService(db, clock=FakeClock(NOW))
    service.add(WindowRequest(WindowKind.MAINTENANCE, "MARKLABEL=MARKLABELVAL", cron="0 2 * * SUN", duration_s=7200,
                              tz="UTC", reason="MARKWINDOWREASON"))
    service.add(WindowRequest(WindowKind.MAINTENANCE, "team=nobody", start=NOW + timedelta(days=1),
                              end=NOW + timedelta(days=1, hours=1)))
    service.add(WindowRequest(WindowKind.MAINTENANCE, "MARKLABEL=MARKLABELVAL", start=NOW + timedelta(days=30),
                              end=NOW + timedelta(days=30, hours=1)))
    html = _client(db).get("/status/public").get_data(as_text=True)
    scheduled = html.split('id="scheduled"')[1].split("</section>")[0]
    # Sunday 2026-12-13 02:00-04:00 UTC over api, auth and cache (all carry the label)
    assert "<b>REST API, auth, cache</b>: from 2026-12-13 02:00:00 UTC to 2026-12-13 04:00:00 UTC (recurring)" in scheduled
    assert scheduled.count("<li>") == 1  # not the window over no component, not the one 30 days out
    assert "MARKWINDOWREASON" not in html and "MARKLABEL" not in html
