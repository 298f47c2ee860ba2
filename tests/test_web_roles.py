"""Roles on every operation, generated from the operations table: an operation that declares no role
fails here, and each guarded one is tried as anonymous, viewer, operator and admin, by token and by
login cookie. Token expiry (moved clock), revocation, read scope; the document shows each role."""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.accounts import passwords, service
from orchestrator.accounts.roles import Role, Scope
from orchestrator.core.clock import FakeClock
from orchestrator.db.audit import Actor
from orchestrator.db.engine import Database
from orchestrator.db.models import User
from orchestrator.web.app import blueprints, create_app
from orchestrator.web.openapi import openapi_document
from orchestrator.web.operations import OPERATIONS, Operation
from orchestrator.web.source import DatabaseSource
from orchestrator.web.state import WebSettings
from tests.test_reports import seed

ADMIN_ACTOR = Actor(os_user="root", host="test", command="test")
PASSWORD = "a long enough password"
#: path values that name seeded rows (a component, an incident)
PATH_VALUES = {"name": "web", "id": "3"}
#: answers that mean the gate let the request through (the operation may still refuse the request itself)
GATE_REFUSALS = {401, 403, 405, 429}


def _guarded() -> list[Operation]:
    """Every operation that is not an open read (web.app.blueprints() imports every module declaring some)."""
    blueprints()
    return [op for op in OPERATIONS if op.guarded]


def _url(op: Operation) -> str:
    path = op.path
    for key, value in PATH_VALUES.items():
        path = path.replace("{" + key + "}", value)
    return "/api/v1" + path


def _rank_allows(role: Role, op: Operation) -> bool:
    return role.allows(op.needed_role)


@functools.cache
def password_hash() -> str:
    """PASSWORD hashed once by the real hasher (each hash costs ~0.1-0.3 s; logins still verify for real)."""
    return passwords.hash_password(PASSWORD)


def add_user(db: Database, name: str, role: Role, now: datetime) -> None:
    """A user row as `users add` writes it, with the hash made once (tests/test_cli_users.py runs the command)."""
    with db.write() as session:
        session.add(User(name=name, role=role.value, password_hash=password_hash(), session_epoch=1, created_at=now,
                         password_changed_at=now))


@pytest.fixture
def world(db: Database):
    """A seeded database, one user and one write token per role, and an app on a fake clock."""
    now = datetime.now(UTC)
    seed(db, now)
    clock = FakeClock(now)
    tokens = {}
    for role in Role:
        add_user(db, role.value, role, now)
        tokens[role] = service.create_token(db, role.value, Scope.WRITE, None, actor=ADMIN_ACTOR, clock=clock)[1]
    app = create_app(DatabaseSource(db, clock=clock), WebSettings())
    return app, clock, tokens


def test_every_operation_declares_its_role() -> None:
    blueprints()
    undeclared = [f"{op.method} {op.path}" for op in OPERATIONS if op.role is None]
    assert undeclared == [], "declare role= on these operations (web/operations.py)"


def test_the_document_shows_each_operations_role() -> None:
    document = openapi_document()
    for op in OPERATIONS:
        shown = document["paths"][op.path][op.method.lower()]
        assert shown["x-required-role"] == op.needed_role.value
        assert op.needed_role.value in shown["description"]
        assert ("security" in shown) == op.guarded
        assert ("401" in shown["responses"]) == op.guarded


def test_the_write_operations_need_the_roles_docs_web_md_lists() -> None:
    """The table in docs/web.md, "Users and roles", is this list."""
    table = {f"{op.method} {op.path}": op.needed_role.value for op in _guarded()}
    text = (Path(__file__).parents[1] / "docs" / "web.md").read_text(encoding="utf-8")
    for key, role in table.items():
        assert f"| `{key}` | {role} " in text, key


@pytest.mark.parametrize("op", _guarded(), ids=lambda op: f"{op.method} {op.path}")
def test_each_guarded_operation_by_token(world, op: Operation) -> None:
    app, _clock, tokens = world
    client = app.test_client()
    assert client.open(_url(op), method=op.method, json={}).status_code in (401,)
    for role in Role:
        answer = client.open(_url(op), method=op.method, json={},
                             headers={"Authorization": f"Bearer {tokens[role]}"})
        if _rank_allows(role, op):
            assert answer.status_code not in GATE_REFUSALS, (role, answer.get_json())
        else:
            assert answer.status_code == 403, (role, answer.status_code)
            assert f"needs role {op.needed_role.value}" in answer.get_json()["error"]["message"]


def _login(client, name: str, password: str = PASSWORD):
    csrf = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    return csrf, client.post("/login", data={"user": name, "password": password, "csrf_token": csrf})


def test_each_write_by_login_needs_the_role_and_csrf(world) -> None:
    """One login per role (a password check costs ~0.3 s), then every write operation in turn."""
    app, _clock, _tokens = world
    writes = [op for op in _guarded() if op.write]
    assert writes
    for role in Role:
        client = app.test_client()
        csrf, logged = _login(client, role.value)
        assert logged.status_code == 303
        for op in writes:
            where = (role.value, op.method, op.path)
            assert client.open(_url(op), method=op.method, data={}).status_code == 403, where  # no CSRF token
            answer = client.open(_url(op), method=op.method, data={"csrf_token": csrf},
                                 headers={"Accept": "application/json"})
            if _rank_allows(role, op):
                assert answer.status_code not in GATE_REFUSALS, (*where, answer.status_code)
            else:
                assert answer.status_code == 403, (*where, answer.status_code)


def test_reads_stay_open_and_users_is_admin_only(world) -> None:
    app, _clock, tokens = world
    client = app.test_client()
    assert client.get("/api/v1/components").status_code == 200
    assert client.get("/api/v1/users").status_code == 401
    assert client.get("/api/v1/me").status_code == 401
    for role in (Role.VIEWER, Role.OPERATOR):
        bearer = {"Authorization": f"Bearer {tokens[role]}"}
        assert client.get("/api/v1/users", headers=bearer).status_code == 403
        assert client.get("/api/v1/me", headers=bearer).get_json()["role"] == role.value
    listed = client.get("/api/v1/users", headers={"Authorization": f"Bearer {tokens[Role.ADMIN]}"})
    assert listed.status_code == 200
    assert {u["name"]: u["role"] for u in listed.get_json()["items"]} == {r.value: r.value for r in Role}
    assert "argon2" not in listed.get_data(as_text=True)


def test_a_read_scope_token_reads_but_never_writes(world, db: Database) -> None:
    app, clock, _tokens = world
    _row, token = service.create_token(db, "admin", Scope.READ, None, actor=ADMIN_ACTOR, clock=clock)
    client = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/users", headers=bearer).status_code == 200
    refused = client.post("/api/v1/incidents/3/ack", headers=bearer)
    assert refused.status_code == 403 and "scope read" in refused.get_json()["error"]["message"]


def test_a_token_expires_on_the_clock_and_a_revoked_one_stops_at_once(world, db: Database) -> None:
    app, clock, _tokens = world
    row, token = service.create_token(db, "operator", Scope.WRITE, 3600, actor=ADMIN_ACTOR, clock=clock)
    other, second = service.create_token(db, "operator", Scope.WRITE, None, actor=ADMIN_ACTOR, clock=clock)
    client = app.test_client()
    ack = "/api/v1/incidents/3/ack"
    assert client.post(ack, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    clock.advance(3599)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    clock.advance(1)
    assert client.post(ack, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert [t["state"] for t in service.list_tokens(db, "operator", clock) if t["id"] == row["id"]] == ["expired"]

    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {second}"}).status_code == 200
    service.revoke_token(db, other["id"], actor=ADMIN_ACTOR, clock=clock)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {second}"}).status_code == 401
    # a token's shape with another's secret, or a made-up id, is no better
    forged = second.rsplit("_", 1)[0] + "_" + token.rsplit("_", 1)[1]
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_writes_are_audited_with_the_user_and_the_token_id(world, db: Database) -> None:
    from sqlalchemy import select

    from orchestrator.db.models import AuditEntry

    app, _clock, tokens = world
    client = app.test_client()
    token_id = int(tokens[Role.OPERATOR].split("_")[1])
    assert client.post("/api/v1/components/web/pause", json={"for": "5m"},
                       headers={"Authorization": f"Bearer {tokens[Role.OPERATOR]}"}).status_code == 200
    csrf, _ = _login(client, "admin")
    assert client.post("/api/v1/components/web/resume", data={"csrf_token": csrf}).status_code == 200
    with db.read() as session:
        rows = session.execute(select(AuditEntry.os_user, AuditEntry.command, AuditEntry.action)
                               .where(AuditEntry.target == "web").order_by(AuditEntry.id)).all()
    assert [(r.os_user, r.command) for r in rows][-2:] == [
        ("operator", f"POST /api/v1/components/web/pause (api token #{token_id})"),
        ("admin", "POST /api/v1/components/web/resume")]


def test_a_password_change_ends_the_users_logins(world, db: Database) -> None:
    app, clock, _tokens = world
    client = app.test_client()
    csrf, _ = _login(client, "operator")
    ack = "/api/v1/incidents/3/ack"
    assert client.post(ack, data={"csrf_token": csrf}).status_code == 200
    service.set_password(db, "operator", "another long password", actor=ADMIN_ACTOR, clock=clock)
    assert client.post(ack, data={"csrf_token": csrf}, headers={"Accept": "application/json"}).status_code == 401
    assert 'id="signed-in"' not in client.get("/").get_data(as_text=True)
    assert _login(client, "operator")[1].status_code == 401  # the old password is gone
    assert _login(client, "operator", "another long password")[1].status_code == 303


def test_a_role_change_and_a_removal_apply_at_the_next_request(world, db: Database) -> None:
    app, clock, _tokens = world
    client = app.test_client()
    csrf, _ = _login(client, "operator")
    service.set_role(db, "operator", Role.VIEWER, actor=ADMIN_ACTOR, clock=clock)
    assert client.post("/api/v1/incidents/3/ack", data={"csrf_token": csrf}).status_code == 403
    service.remove_user(db, "operator", actor=ADMIN_ACTOR, clock=clock)
    assert client.post("/api/v1/incidents/3/ack", data={"csrf_token": csrf}).status_code == 401


def test_a_login_ends_when_idle_and_at_its_absolute_limit(world) -> None:
    from orchestrator.web.auth import SESSION_ABSOLUTE_S, SESSION_IDLE_S

    app, clock, _tokens = world
    me = "/api/v1/me"
    idle = app.test_client()
    _login(idle, "viewer")
    clock.advance(SESSION_IDLE_S - 1)
    assert idle.get("/?partial=1").status_code == 200  # the page's own refresh: not a person
    clock.advance(1)
    assert idle.get(me).status_code == 401

    busy = app.test_client()
    _login(busy, "viewer")
    used_s = 0
    while used_s + SESSION_IDLE_S // 2 < SESSION_ABSOLUTE_S:
        clock.advance(SESSION_IDLE_S // 2)
        used_s += SESSION_IDLE_S // 2
        assert busy.get(me).status_code == 200, used_s  # a person's requests keep it alive ...
    clock.advance(SESSION_ABSOLUTE_S - used_s)
    assert busy.get(me).status_code == 401  # ... until its absolute limit


def test_wrong_passwords_are_throttled_like_wrong_tokens(world) -> None:
    from orchestrator.web.auth import FREE_GUESSES

    app, clock, _tokens = world
    client = app.test_client()
    for n in range(FREE_GUESSES + 1):
        assert _login(client, "admin", f"guess number {n}")[1].status_code == 401
    throttled = _login(client, "admin")[1]
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    clock.advance(1.5)
    assert _login(client, "admin")[1].status_code == 303


def test_the_legacy_token_acts_as_admin_and_is_logged_as_deprecated_once(db: Database, caplog) -> None:
    now = datetime.now(UTC)
    seed(db, now)
    caplog.set_level(logging.WARNING, logger="orchestrator.web")
    app = create_app(DatabaseSource(db, clock=FakeClock(now)), WebSettings(token="the-old-shared-secret"))
    client = app.test_client()
    bearer = {"Authorization": "Bearer the-old-shared-secret"}
    assert client.get("/api/v1/users", headers=bearer).status_code == 200
    assert client.post("/api/v1/incidents/3/ack", headers=bearer).get_json()["acked_by"] == "api"
    assert client.get("/api/v1/me", headers=bearer).get_json() == {"name": "api", "role": "admin", "token_id": None,
                                                                   "scope": "write"}
    deprecations = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(deprecations) == 1 and "the-old-shared-secret" not in caplog.text
    caplog.clear()
    create_app(DatabaseSource(db, clock=FakeClock(now)), WebSettings())
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]  # no token, no line


def test_migration_0016_adds_and_removes_only_its_tables(db: Database) -> None:
    import sqlalchemy as sa

    from orchestrator.db import migrate

    mine = {"users", "api_tokens"}
    with db.engine.connect() as conn:
        assert mine <= set(sa.inspect(conn).get_table_names())
    migrate.downgrade(db, "0012")
    with db.engine.connect() as conn:
        left = set(sa.inspect(conn).get_table_names())
    assert not mine & left and "audit_log" in left
    migrate.upgrade(db)
    service.add_user(db, "back", Role.VIEWER, PASSWORD, actor=ADMIN_ACTOR)
    assert [u["name"] for u in service.list_users(db)] == ["back"]


def test_login_to_read_closes_every_read_but_the_probes_and_the_login(db: Database) -> None:
    now = datetime.now(UTC)
    seed(db, now)
    clock = FakeClock(now)
    add_user(db, "reader", Role.VIEWER, now)
    token = service.create_token(db, "reader", Scope.READ, None, actor=ADMIN_ACTOR, clock=clock)[1]
    client = create_app(DatabaseSource(db, clock=clock), WebSettings(login_to_read=True)).test_client()
    page = client.get("/components/web?x=1")
    assert page.status_code == 303 and page.headers["Location"] == "/login?next=/components/web?x=1"
    for path in ("/api/v1/components", "/metrics", "/badge/web/status.svg"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200, path
    for path in ("/healthz", "/login", "/static/app.css"):
        assert client.get(path).status_code == 200, path
    # status pages are for customers: open (a page no one declared is a 404, not a login form)
    assert client.get("/status/nosuchpage").status_code == 404
    assert client.get("/static/status.css").status_code == 200
    _login(client, "reader")
    assert client.get("/components/web").status_code == 200
    open_client = create_app(DatabaseSource(db, clock=clock), WebSettings()).test_client()
    assert open_client.get("/components/web").status_code == 200  # off: reads stay open
