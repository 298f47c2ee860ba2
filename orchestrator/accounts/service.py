"""Users and API tokens: the service behind `orchestrator users|tokens` and the web's sign-in.

Each change runs in one transaction with its audit row (``db.audit``). Passwords are hashed before
the transaction opens (argon2 takes tens of milliseconds). A password change raises the user's
``session_epoch``, which every web login carries: older logins stop working at their next request, on
every web server reading this database. Removing a user removes their tokens (ON DELETE CASCADE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select, update

from orchestrator.accounts import passwords, tokens
from orchestrator.accounts.roles import Role, Scope
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import ConflictError, InputError, NotFoundError
from orchestrator.db import audit
from orchestrator.db.audit import Actor
from orchestrator.db.engine import Database
from orchestrator.db.models import ApiToken, User

#: a user name: lower-case, starts with a letter (no dots or colons: it is part of a session cookie)
USER_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
#: the name the legacy single API token acts under (in the audit, acked_by ...): no user may take it
LEGACY_USER = "api"


@dataclass(frozen=True)
class Principal:
    """Who a web request acts as: a user (by login or token), or the legacy single token."""

    name: str
    role: Role
    #: the API token used, None for a browser login
    token_id: int | None = None
    scope: Scope = Scope.WRITE
    #: the user's session epoch when it logged in (0 for tokens)
    epoch: int = 0
    legacy: bool = False

    def may(self, needed: Role, writes: bool) -> bool:
        """Whether this principal may run an operation needing ``needed`` (``writes``: it changes state)."""
        return self.role.allows(needed) and not (writes and self.scope is Scope.READ)


def check_user_name(name: str, field: str = "NAME") -> str:
    if not isinstance(name, str) or not USER_NAME_RE.match(name):
        raise InputError(f"invalid user name {name!r}: use 1-63 of a-z 0-9 _ - starting with a letter", field=field)
    if name == LEGACY_USER:
        raise InputError(f"{LEGACY_USER!r} is reserved: the audit names the legacy API token so", field=field)
    return name


def _user(session, name: str, field: str = "NAME") -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFoundError(f"no user named {name!r}", field=field)
    return user


def user_dict(user: User, active_tokens: int = 0) -> dict[str, Any]:
    return {"name": user.name, "role": user.role, "created_at": user.created_at,
            "password_changed_at": user.password_changed_at, "active_tokens": active_tokens}


def any_users(db: Database) -> bool:
    with db.read() as session:
        return bool(session.scalar(select(exists().where(User.id.isnot(None)))))


def get_user(db: Database, name: str) -> dict[str, Any]:
    """One user (NotFoundError naming NAME when there is none)."""
    with db.read() as session:
        return user_dict(_user(session, name))


def add_user(db: Database, name: str, role: Role, password: str, *, actor: Actor,
             clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    check_user_name(name)
    hashed = passwords.hash_password(passwords.check_password(password))
    now = clock.now()
    with db.write() as session:
        if session.scalar(select(exists().where(User.name == name))):
            raise ConflictError(f"a user named {name!r} already exists", field="NAME")
        user = User(name=name, role=role.value, password_hash=hashed, session_epoch=1, created_at=now,
                    password_changed_at=now)
        session.add(user)
        audit.record(session, actor, "user-add", f"user:{name}", None, {"role": role.value}, clock)
        session.flush()
        return user_dict(user)


def list_users(db: Database, clock: Clock = SYSTEM_CLOCK) -> list[dict[str, Any]]:
    """Every user with the number of tokens that still work, by name."""
    now = clock.now()
    with db.read() as session:
        counts = dict(session.execute(
            select(ApiToken.user_id, func.count()).where(ApiToken.revoked_at.is_(None))
            .where((ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now)).group_by(ApiToken.user_id)).all())
        return [user_dict(u, counts.get(u.id, 0)) for u in session.scalars(select(User).order_by(User.name))]


def remove_user(db: Database, name: str, *, actor: Actor, clock: Clock = SYSTEM_CLOCK) -> None:
    with db.write() as session:
        user = _user(session, name)
        session.execute(ApiToken.__table__.delete().where(ApiToken.user_id == user.id))  # SQLite without FKs too
        session.delete(user)
        audit.record(session, actor, "user-remove", f"user:{name}", {"role": user.role}, None, clock)


def set_password(db: Database, name: str, password: str, *, actor: Actor, clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """A new password; every web login of the user ends (its tokens stay: revoke those by id)."""
    check_user_name(name)
    hashed = passwords.hash_password(passwords.check_password(password))
    with db.write() as session:
        user = _user(session, name)
        user.password_hash = hashed
        user.session_epoch += 1
        user.password_changed_at = clock.now()
        audit.record(session, actor, "user-password", f"user:{name}", None, {"logins_ended": True}, clock)
        return user_dict(user)


def set_role(db: Database, name: str, role: Role, *, actor: Actor, clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """A new role, in force at the user's next request (logins and tokens read it every time)."""
    with db.write() as session:
        user = _user(session, name)
        before = user.role
        user.role = role.value
        audit.record(session, actor, "user-role", f"user:{name}", {"role": before}, {"role": role.value}, clock)
        return user_dict(user)


def token_dict(row: ApiToken, user: str, now: datetime) -> dict[str, Any]:
    if row.revoked_at is not None:
        state = "revoked"
    elif row.expires_at is not None and row.expires_at <= now:
        state = "expired"
    else:
        state = "active"
    return {"id": row.id, "user": user, "scope": row.scope, "state": state, "created_at": row.created_at,
            "expires_at": row.expires_at, "revoked_at": row.revoked_at}


def create_token(db: Database, user: str, scope: Scope, expires_s: float | None, *, actor: Actor,
                 clock: Clock = SYSTEM_CLOCK) -> tuple[dict[str, Any], str]:
    """A new token for ``user`` (``expires_s`` None: never expires): its row and the token, shown once."""
    now = clock.now()
    secret = tokens.new_secret()
    with db.write() as session:
        owner = _user(session, user, field="--user")
        row = ApiToken(user_id=owner.id, token_hash="", scope=scope.value, created_at=now,
                       expires_at=now + timedelta(seconds=expires_s) if expires_s else None)
        session.add(row)
        session.flush()  # the id is part of the token
        token = tokens.assemble(row.id, secret)
        row.token_hash = tokens.digest(token)
        audit.record(session, actor, "token-create", f"user:{user}", None,
                     {"id": row.id, "scope": scope.value,
                      "expires_at": row.expires_at.isoformat() if row.expires_at else None}, clock)
        return token_dict(row, user, now), token


def list_tokens(db: Database, user: str | None = None, clock: Clock = SYSTEM_CLOCK) -> list[dict[str, Any]]:
    now = clock.now()
    with db.read() as session:
        query = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
        if user is not None:
            _user(session, user, field="--user")
            query = query.where(User.name == user)
        return [token_dict(row, name, now) for row, name in session.execute(query).all()]


def revoke_token(db: Database, token_id: int, *, actor: Actor, clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    now = clock.now()
    with db.write() as session:
        found = session.execute(select(ApiToken, User.name).join(User, User.id == ApiToken.user_id)
                                .where(ApiToken.id == token_id)).first()
        if found is None:
            raise NotFoundError(f"no token with id {token_id}", field="ID")
        row, user = found
        if row.revoked_at is None:
            session.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                            .values(revoked_at=now))
            row.revoked_at = now
            audit.record(session, actor, "token-revoke", f"user:{user}", None, {"id": token_id}, clock)
        return token_dict(row, user, now)


# -- sign-in -----------------------------------------------------------------------------------------
def login(db: Database, name: str, password: str) -> Principal | None:
    """The user ``name`` if ``password`` is theirs (an unknown name costs the same time), else None."""
    with db.read() as session:
        user = session.scalar(select(User).where(User.name == name)) if USER_NAME_RE.match(name) else None
    if not passwords.verify(user.password_hash if user else None, password) or user is None:
        return None
    return Principal(user.name, Role(user.role), epoch=user.session_epoch)


def session_principal(db: Database, name: str, epoch: int) -> Principal | None:
    """The user behind a web login made at ``epoch``, or None when removed or their password changed."""
    with db.read() as session:
        user = session.scalar(select(User).where(User.name == name))
    if user is None or user.session_epoch != epoch:
        return None
    return Principal(user.name, Role(user.role), epoch=epoch)


def token_principal(db: Database, token: str, now: datetime) -> Principal | None:
    """The user a presented API token acts for, or None (unknown, wrong, revoked or expired)."""
    token_id = tokens.token_id(token)
    if token_id is None:
        return None
    with db.read() as session:
        found = session.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                                .where(ApiToken.id == token_id)).first()
    row, user = found if found is not None else (None, None)
    if not tokens.matches(token, row.token_hash if row else "0" * 64) or row is None or user is None:
        return None
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    return Principal(user.name, Role(user.role), token_id=row.id, scope=Scope(row.scope))
