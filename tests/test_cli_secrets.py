"""`--secret-var`, secret_vars in apply files and ${env:} references through the CLI, on both backends."""

from __future__ import annotations

import json

import sqlalchemy as sa

from orchestrator.db.engine import Database
from tests.conftest import snapshot

URL = "http://127.0.0.1:8080/health"


def _show(run_cli, name: str) -> dict:
    result = run_cli("component", "show", name, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_secret_var_is_stored_usable_and_never_shown(run_cli, db_url) -> None:
    added = run_cli("component", "add", "api", "--url", URL, "--secret-var", "dbconn=s3cret-conn-1",
                    "--var", "unit=api.service", "--var", "admin_token=adm-tok-2")
    assert added.exit_code == 0, added.output
    shown = _show(run_cli, "api")
    assert shown["secret_vars"] == {"dbconn": "***"}
    assert shown["vars"] == {"admin_token": "***", "unit": "api.service"}
    for args in (["component", "show", "api"], ["component", "list"], ["component", "list", "--json"]):
        out = run_cli(*args).stdout
        assert "s3cret-conn-1" not in out and "adm-tok-2" not in out
    database = Database(db_url)
    with database.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT secret_vars FROM components")).scalar()
        audit = " ".join(str(r) for r in conn.execute(sa.text("SELECT command, after FROM audit_log")))
    database.dispose()
    assert "s3cret-conn-1" in str(stored), "the daemon needs the value"
    assert "s3cret-conn-1" not in audit and "adm-tok-2" not in audit


def test_a_var_given_as_secret_stops_being_plain(run_cli) -> None:
    assert run_cli("component", "add", "api", "--url", URL, "--var", "conn=plain-1").exit_code == 0
    assert run_cli("component", "update", "api", "--secret-var", "conn=now-secret-2").exit_code == 0
    shown = _show(run_cli, "api")
    assert shown["vars"] == {} and shown["secret_vars"] == {"conn": "***"}
    assert run_cli("component", "update", "api", "--var", "conn=plain-again").exit_code == 0
    shown = _show(run_cli, "api")
    assert shown["vars"] == {"conn": "plain-again"} and shown["secret_vars"] == {}


def test_references_are_shown_as_written(run_cli) -> None:
    url = "http://app:${env:API_PW}@127.0.0.1:8080/health"
    assert run_cli("component", "add", "api", "--url", url, "--secret-var", "k=${env:K}").exit_code == 0
    shown = _show(run_cli, "api")
    assert shown["url"] == url and shown["secret_vars"] == {"k": "${env:K}"}


def test_apply_file_secret_vars_and_headers(run_cli, tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"""components:
  - name: api
    url: {URL}
    secret_vars: {{token: tok-in-file-3}}
    check:
      headers: {{Authorization: "Bearer hdr-tok-4", Accept: json}}
""")
    result = run_cli("apply", "-f", str(path))
    assert result.exit_code == 0, result.output
    shown = _show(run_cli, "api")
    assert shown["check"]["headers"] == {"Authorization": "Bearer ***", "Accept": "json"}
    assert shown["secret_vars"] == {"token": "***"}
    assert shown["check"]["url"] == URL
    assert "unchanged" in run_cli("apply", "-f", str(path)).stdout


BAD = [
    (["--url", "http://u:${env:}@127.0.0.1/"], "--url"),
    (["--url", URL, "--secret-var", "k=${env:bad name}"], "--secret-var"),
    (["--url", URL, "--var", "k=${file:relative}"], "--var"),
    (["--url", URL, "--var", "k=1", "--secret-var", "k=2"], "--secret-var"),
    (["--url", URL, "--backup-url", "http://u:${env:}@h/"], "--backup-url"),
]


def test_bad_secret_input_exits_2_and_changes_nothing(run_cli, db_url) -> None:
    assert run_cli("component", "add", "existing", "--url", URL).exit_code == 0
    database = Database(db_url)
    before = snapshot(database)
    for args, flag in BAD:
        for command in (["component", "add", "api"], ["component", "update", "existing"]):
            result = run_cli(*command, *args)
            assert result.exit_code == 2, (command, args, result.output)
            [line] = result.stderr.strip().splitlines()
            assert flag in line, line
    assert snapshot(database) == before
