"""`orchestrator users|tokens`: what they do, every bad input refused (exit 2 naming the field, nothing
changed), and no password or token anywhere in clear: CLI output, logs, audit, database."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from orchestrator.accounts.roles import Role
from orchestrator.db.engine import Database
from tests.conftest import snapshot
from tests.test_web_roles import add_user

PASSWORD = "PWMARKER-correct-horse-7731"


def _add(run_cli, name: str, role: str, password: str = PASSWORD):
    return run_cli("users", "add", name, "--role", role, input=f"{password}\n{password}\n")


def test_users_and_tokens_round_trip(run_cli, tmp_path) -> None:
    assert _add(run_cli, "alice", "operator").exit_code == 0
    secret_file = tmp_path / "pw"
    secret_file.write_text("from a file, long enough\n")
    assert run_cli("users", "add", "bob", "--role", "viewer", "--password-file", str(secret_file)).exit_code == 0
    created = run_cli("tokens", "create", "--user", "alice", "--expires", "30d", "--scope", "read")
    assert created.exit_code == 0 and created.stdout.strip().startswith("orch_")
    assert "shown only now" in created.stderr
    listed = json.loads(run_cli("users", "list", "--json").stdout)
    assert [(u["name"], u["role"], u["active_tokens"]) for u in listed] == [("alice", "operator", 1), ("bob", "viewer", 0)]
    assert run_cli("users", "role", "bob", "admin").exit_code == 0
    tokens = json.loads(run_cli("tokens", "list", "--json").stdout)
    assert [(t["user"], t["scope"], t["state"]) for t in tokens] == [("alice", "read", "active")]
    assert run_cli("tokens", "revoke", str(tokens[0]["id"])).exit_code == 0
    assert json.loads(run_cli("tokens", "list", "--user", "alice", "--json").stdout)[0]["state"] == "revoked"
    assert run_cli("users", "password", "alice", input="a new long password\na new long password\n").exit_code == 0
    assert run_cli("users", "remove", "bob").exit_code == 0
    assert [u["name"] for u in json.loads(run_cli("users", "list", "--json").stdout)] == ["alice"]
    table = run_cli("users", "list")
    assert table.exit_code == 0 and "alice" in table.stdout and "operator" in table.stdout


BAD = [
    (["users", "add", "Alice", "--role", "viewer"], "NAME"),
    (["users", "add", "api", "--role", "viewer"], "NAME"),
    (["users", "add", "bob", "--role", "root"], "--role"),
    (["users", "add", "bob"], "--role"),
    (["users", "add", "bob", "--role", "viewer", "--password-file", "/nonexistent/pw"], "--password-file"),
    (["users", "add", "alice", "--role", "viewer"], "NAME"),  # exists
    (["users", "remove", "ghost"], "NAME"),
    (["users", "remove", "Bad Name"], "NAME"),
    (["users", "password", "ghost"], "NAME"),
    (["users", "role", "alice", "root"], "ROLE"),
    (["users", "role", "ghost", "admin"], "NAME"),
    (["tokens", "create"], "--user"),
    (["tokens", "create", "--user", "ghost"], "--user"),
    (["tokens", "create", "--user", "alice", "--expires", "0s"], "--expires"),
    (["tokens", "create", "--user", "alice", "--expires", "soon"], "--expires"),
    (["tokens", "create", "--user", "alice", "--expires", "99999d"], "--expires"),
    (["tokens", "create", "--user", "alice", "--scope", "all"], "--scope"),
    (["tokens", "list", "--user", "ghost"], "--user"),
    (["tokens", "revoke", "0"], "ID"),
    (["tokens", "revoke", "abc"], "ID"),
    (["tokens", "revoke", "999"], "ID"),
]


@pytest.mark.parametrize(("args", "field"), BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_bad_input_exits_2_naming_the_field_and_changes_nothing(run_cli, db_url: str, args, field) -> None:
    database = Database(db_url)
    add_user(database, "alice", Role.OPERATOR, datetime.now(UTC))
    before = snapshot(database)
    result = run_cli(*args, input="x\nx\n")
    assert result.exit_code == 2, result.output
    assert field in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert snapshot(database) == before


@pytest.mark.parametrize(("args", "field"), [
    (["users", "add", "bob", "--role", "viewer"], "password"),
    (["users", "password", "alice"], "password"),
], ids=["add", "password"])
@pytest.mark.parametrize("typed", ["Sh0rt!", " padded password ", "x" * 1025], ids=["short", "blanks", "huge"])
def test_a_bad_password_exits_2_without_echoing_it(run_cli, db_url: str, args, field, typed: str) -> None:
    database = Database(db_url)
    add_user(database, "alice", Role.OPERATOR, datetime.now(UTC))
    before = snapshot(database)
    result = run_cli(*args, input=f"{typed}\n{typed}\n")
    assert result.exit_code == 2 and f"{field}:" in result.stderr
    assert typed.strip() not in result.output
    assert snapshot(database) == before


def test_no_password_or_token_in_clear_anywhere(run_cli, db_url: str, caplog) -> None:
    """Plant a password and a token, use both through the CLI and the web app, then grep the CLI's
    output, the log, the audit and every row of every table."""
    from orchestrator.web.app import create_app
    from orchestrator.web.source import DatabaseSource
    from orchestrator.web.state import WebSettings
    from tests.test_reports import seed

    caplog.set_level(logging.DEBUG)
    outputs = [_add(run_cli, "alice", Role.OPERATOR.value).output]
    created = run_cli("tokens", "create", "--user", "alice", "--json")
    token = json.loads(created.stdout)["token"]
    outputs += [run_cli(*args).output for args in (["users", "list"], ["users", "list", "--json"], ["tokens", "list"],
                                                   ["tokens", "list", "--json"])]
    database = Database(db_url)
    seed(database, datetime.now(UTC))
    client = create_app(DatabaseSource(database), WebSettings()).test_client()
    assert client.post("/api/v1/incidents/3/ack", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.post("/api/v1/incidents/3/ack", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    page = client.get("/login").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/login", data={"user": "alice", "password": PASSWORD, "csrf_token": csrf}).status_code == 303
    assert client.post("/login", data={"user": "alice", "password": PASSWORD + "x", "csrf_token": csrf}).status_code == 401
    outputs.append(run_cli("users", "password", "alice", input=f"{PASSWORD}-2\n{PASSWORD}-2\n").output)
    outputs.append(run_cli("tokens", "revoke", str(json.loads(created.stdout)["id"])).output)

    with database.engine.connect() as conn:
        rows = [repr(tuple(r)) for table in sa.inspect(conn).get_table_names()
                for r in conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()]
        audit = [repr(tuple(r)) for r in conn.execute(sa.text("SELECT * FROM audit_log")).all()]
    database.dispose()
    secret_part = token.split("_", 2)[2]  # orch_<id>_<secret>: the secret may itself hold "_"
    places = {"cli": "\n".join(outputs), "log": caplog.text, "database": "\n".join(rows)}
    for where, text in places.items():
        for marker in ("PWMARKER", secret_part):
            assert marker not in text, f"{marker[:8]}... in {where}"
    assert any("user-add" in row for row in audit) and any("token-create" in row for row in audit)
    assert any("token-revoke" in row for row in audit) and any("user-password" in row for row in audit)
