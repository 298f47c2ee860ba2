"""Bad input to `component ...` and `apply` exits 2 with one line and changes nothing (snapshot digest)."""

from __future__ import annotations

import pytest

from orchestrator.db.engine import Database
from tests.conftest import snapshot

URL = "http://127.0.0.1:8080/health"

BAD = [
    pytest.param(["component", "update", "api"], "nothing to change", id="update-no-flags"),
    pytest.param(["component", "update", "ghost", "--interval", "5s"], "ghost", id="update-unknown"),
    pytest.param(["component", "update", "api", "--interval", "1s", "--timeout", "1s"], "--timeout",
                 id="update-timeout-eq-interval"),
    pytest.param(["component", "update", "api", "--url", "ftp://x/"], "--url", id="update-bad-url"),
    pytest.param(["component", "update", "api", "--depends-on", "api"], "--depends-on", id="update-self-dep"),
    pytest.param(["component", "update", "db", "--depends-on", "api"], "cycle", id="update-cycle"),
    pytest.param(["component", "update", "api", "--plan", "nope"], "--plan", id="update-unknown-plan"),
    pytest.param(["component", "update", "api", "--var", "k=1", "--secret-var", "k=2"], "--secret-var",
                 id="update-var-twice"),
    pytest.param(["component", "update", "api", "--replicas", "-1"], "--replicas", id="update-negative-replicas"),
    pytest.param(["component", "update", "api", "--min-replicas", "5", "--max-replicas", "2"], "--min-replicas",
                 id="update-min-over-max"),
    pytest.param(["component", "remove", "ghost"], "ghost", id="remove-unknown"),
    pytest.param(["component", "remove", "db"], "api", id="remove-with-dependents"),
    pytest.param(["component", "pause", "ghost"], "ghost", id="pause-unknown"),
    pytest.param(["component", "pause", "api", "--for", "soon"], "--for", id="pause-bad-duration"),
    pytest.param(["component", "resume", "ghost"], "ghost", id="resume-unknown"),
    pytest.param(["component", "maintenance", "api"], "--for", id="maintenance-neither"),
    pytest.param(["component", "maintenance", "api", "--for", "1h", "--end"], "--for", id="maintenance-both"),
    pytest.param(["component", "failback", "api"], "primary", id="failback-not-failed-over"),
    pytest.param(["component", "show", "ghost"], "ghost", id="show-unknown"),
    pytest.param(["apply", "-f", "/nonexistent.yaml"], "nonexistent", id="apply-missing-file"),
    pytest.param(["incidents", "ack", "12345"], "12345", id="ack-unknown"),
    pytest.param(["incidents", "approve", "12345"], "12345", id="approve-unknown"),
]


@pytest.mark.parametrize(("args", "words"), BAD)
def test_bad_input_changes_nothing(run_cli, db_url, args, words, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./recovery_strategies.json
    assert run_cli("component", "add", "db", "--url", URL).exit_code == 0
    assert run_cli("component", "add", "api", "--url", URL, "--depends-on", "db").exit_code == 0
    database = Database(db_url)
    before = snapshot(database)
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert words in line, line
    assert snapshot(database) == before
