"""Every page renders, whatever is stored: incidents in every status, journal rows of every outcome and
every kind of verification record the executor, the takeover and a failed action write.

The app renders with StrictUndefined (as in production), so a template reading a key a record does not
have fails here instead of answering 500 to an operator.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from jinja2 import StrictUndefined

from orchestrator.core.clock import FakeClock
from orchestrator.core.states import AttemptStatus, IncidentStatus
from orchestrator.db.engine import Database
from orchestrator.db.models import Incident, IncidentNote, Notification
from orchestrator.web.app import create_app
from orchestrator.web.pagemodels import verification_line
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.test_reports import _component, _step

TOKEN = "correct-horse-battery-staple"

#: every kind of verification record a journal row may hold (recovery/attempt, executor, takeover, journal)
VERIFICATIONS = {
    "checked and passed": {"mode": "health", "passed": True, "reason": "2 of 2 checks passed"},
    "checked, not passed": {"mode": "health", "passed": False, "reason": "still down"},
    "never verified": {"mode": "none", "passed": False, "reason": "this strategy is never verified"},
    "action failed": {"permanent": False},
    "action failed permanently": {"permanent": True},
    "failed, with its check": {"mode": "own", "passed": False, "permanent": True},
    "under way": {"action": "succeeded", "verifying": True},
    "reconciled, interrupted": {"reconciled": True, "interrupted": True, "killed_pid": 4242},
    "reconciled, verified": {"reconciled": True, "mode": "health", "passed": True},
    "nothing": {},
}


@pytest.fixture
def stored(db: Database) -> dict[str, int]:
    """One incident per status, each with one journal row per outcome × verification kind."""
    now = datetime.now(UTC)
    ids = {}
    with db.write() as session:
        web = _component("web", now - timedelta(days=1), plan="web")
        session.add(web)
        session.flush()
        for status in IncidentStatus:
            resolved = status is IncidentStatus.RESOLVED
            incident = Incident(component_name="web", component_id=web.id, opened_at=now - timedelta(hours=1),
                                updated_at=now, status=status.value, plan="web", reason="connection refused",
                                status_reason=f"why it is {status.value}", resolved_at=now if resolved else None,
                                resolution="auto" if resolved else None,
                                escalated_at=now if status is IncidentStatus.ESCALATED else None,
                                blocked_by="db" if status is IncidentStatus.BLOCKED else None,
                                next_attempt_at=now + timedelta(minutes=5))
            session.add(incident)
            session.flush()
            ids[status.value] = incident.id
            step = 0
            for outcome in AttemptStatus:
                for verification in VERIFICATIONS.values():
                    finished = None if outcome in (AttemptStatus.PENDING, AttemptStatus.RUNNING) else now
                    session.add(_step(incident, step, 1, "restart", outcome.value,
                                      outcome not in (AttemptStatus.SKIPPED, AttemptStatus.PENDING),
                                      verification=verification, finished_at=finished, detail="exit 1",
                                      output="stderr: boom", description="restart web",
                                      skip_reason="a guard" if outcome is AttemptStatus.SKIPPED else None))
                    step += 1
            session.add(Notification(incident_id=incident.id, event="opened", channel="mailto", status="failed",
                                     title="web down", error="smtp refused", created_at=now))
            session.add(IncidentNote(incident_id=incident.id, author="alice", text="looking", at=now))
    return ids


@pytest.mark.parametrize("writes", [True, False], ids=["with token", "read-only"])
def test_every_page_renders_every_stored_incident(db: Database, stored: dict[str, int], writes: bool) -> None:
    app = create_app(DatabaseSource(db, clock=FakeClock(datetime.now(UTC))),
                     WebSettings(token=TOKEN if writes else None))
    assert app.jinja_env.undefined is StrictUndefined
    client = app.test_client()
    if writes:
        csrf = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
        assert client.post("/login", data={"token": TOKEN, "csrf_token": csrf}).status_code == 303
    urls = ["/", "/?partial=1", "/components/web", "/components/web?partial=1", "/report", "/login"]
    for incident_id in stored.values():
        urls += [f"/incidents/{incident_id}", f"/incidents/{incident_id}?partial=1"]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.get_data(as_text=True)[:500])
    failed = client.get(f"/incidents/{stored['escalated']}").get_data(as_text=True)
    assert "not verified: the action failed" in failed and "verification under way" in failed


@pytest.mark.parametrize("kind", VERIFICATIONS, ids=list(VERIFICATIONS))
def test_each_verification_record_reads_as_one_line(kind: str) -> None:
    line = verification_line(VERIFICATIONS[kind])
    if kind == "nothing":
        assert line is None
    else:
        assert set(line) == {"text", "passed"} and line["text"]


@pytest.mark.parametrize("url", ["/incidents/18446744073709551617", "/components/a%00b", "/components/" + "x" * 64])
def test_a_page_for_an_impossible_id_or_name_is_a_400_page_not_a_500(db: Database, url: str) -> None:
    client = create_app(DatabaseSource(db, clock=FakeClock(datetime.now(UTC))), WebSettings()).test_client()
    response = client.get(url)
    assert response.status_code == 400 and response.content_type.startswith("text/html")
