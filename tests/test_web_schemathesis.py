"""Schemathesis against the live API: the app served by waitress on loopback, over a seeded database.

Every check schemathesis has (server errors, response schema and status conformance, valid requests
accepted, invalid ones refused, 405 with Allow, ignored auth …) over every phase (examples, coverage,
fuzzing and the stateful one, which chains operations through the document's links), with a bounded
number of examples per operation and a time budget. Writes are covered with the token; its own
wrong-token checks do not throttle its later calls (a wrong token never delays the right one).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.core.clock import FakeClock
from orchestrator.db.engine import Database
from orchestrator.web import server
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.test_reports import _component, seed

TOKEN = "schemathesis-token-1234"
#: examples per operation and phase; the whole run is also bounded in time
MAX_EXAMPLES = 12
MAX_TIME_S = 45
SEED = 20261207
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.slow
def test_schemathesis_finds_nothing_wrong_with_the_live_api(db: Database, tmp_path: Path) -> None:
    if not db.is_sqlite:
        pytest.skip("the API is the same on both backends; one run bounds the suite's time")
    now = datetime.now(UTC)
    seed(db, now)
    stub = tmp_path / "restart-it"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"version": 1, "plans": {"web": {"steps": [
        {"strategy": "restart", "params": {"command": [str(stub), "{component.name}"]}}]}}}))
    with db.write() as session:
        session.add(_component("svc", now, plan="web"))
    source = DatabaseSource(db, plans_path=plans, clock=FakeClock(now))
    web = server.start(source, "127.0.0.1:0", WebSettings(token=TOKEN))
    report = tmp_path / "report.json"
    try:
        run = subprocess.run(
            [str(SCHEMATHESIS), "run", f"{web.url}api/v1/openapi.json", "--checks", "all",
             "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", str(MAX_EXAMPLES),
             "--max-time", str(MAX_TIME_S), "--seed", str(SEED), "--workers", "1", "--no-color",
             "--header", f"Authorization: Bearer {TOKEN}", "--request-timeout", "10",
             "--report", "json", "--report-json-path", str(report)],
            capture_output=True, text=True, timeout=MAX_TIME_S + 60, cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SCHEMATHESIS_HOOKS": ""})
    finally:
        web.stop()
    print(run.stdout[-6000:])
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
