"""`orchestrator users ...` and `orchestrator tokens ...`: who may use the web API and page, and how.

The CLI itself needs no login: it runs where the database is, with the operating system's permissions
on it (the audit records the OS user).
"""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import print_json, print_table
from orchestrator.cli.params import MAX_ID
from orchestrator.core.durations import parse_duration
from orchestrator.core.errors import ConflictError, InputError

ROLES = ("viewer", "operator", "admin")
#: the longest a token may be made to last (and the default)
MAX_EXPIRES_S = 3650 * 86400
DEFAULT_EXPIRES = "90d"


class UserNameType(click.ParamType):
    name = "name"

    def convert(self, value, param, ctx) -> str:
        from orchestrator.accounts.service import check_user_name

        try:
            return check_user_name(value)
        except InputError as exc:
            self.fail(exc.message, param, ctx)


class ExpiresType(click.ParamType):
    """A duration up to ten years, or ``never``: seconds, or None."""

    name = "duration|never"

    def convert(self, value, param, ctx) -> float | None:
        if value is None or isinstance(value, float):
            return value
        if value == "never":
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if not 0 < seconds <= MAX_EXPIRES_S:
            self.fail(f"must be positive and at most 3650d, got {value!r}", param, ctx)
        return seconds


USER_NAME = UserNameType()


def _password(password_file: Path | None, *, confirm: bool = True) -> str:
    """The password from ``--password-file`` (its first line), else asked for without echo."""
    from orchestrator.accounts.passwords import check_password

    if password_file is not None:
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {password_file}: {getattr(exc, 'strerror', None) or exc}",
                             field="--password-file") from None
        return check_password(lines[0] if lines else "", field="--password-file")
    return check_password(click.prompt("password", hide_input=True, confirmation_prompt=confirm, err=True),
                          field="password")


def _actor():
    from orchestrator.db.audit import Actor

    return Actor()


password_file_option = click.option(
    "--password-file", type=click.Path(dir_okay=False, path_type=Path),
    help="Read the password from this file's first line instead of asking (never give it on the command line).")


@click.group()
def users() -> None:
    """Users of the web page and API, each with a role (viewer, operator, admin)."""


@users.command("add")
@click.argument("name", type=USER_NAME)
@click.option("--role", type=click.Choice(ROLES), help="Required. viewer reads; operator also acts on components "
              "and incidents; admin also manages users.")
@password_file_option
@pass_app
def add(app: AppContext, name: str, role: str | None, password_file: Path | None) -> None:
    """Add a user; the password is asked for (or read from --password-file)."""
    from orchestrator.accounts import service
    from orchestrator.accounts.roles import Role

    if role is None:  # checked here, so the one error line is ours rather than Click's list of choices
        raise InputError(f"required: {', '.join(ROLES)}", field="--role")
    db = app.database()
    if any(u["name"] == name for u in service.list_users(db)):  # before asking for a password
        raise ConflictError(f"a user named {name!r} already exists", field="NAME")
    password = _password(password_file)
    user = service.add_user(db, name, Role(role), password, actor=_actor())
    click.echo(f"added user {user['name']} ({user['role']})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """Every user, their role and how many of their tokens still work."""
    from orchestrator.accounts import service

    rows = service.list_users(app.database())
    if as_json:
        print_json(rows)
        return
    print_table(["NAME", "ROLE", "ACTIVE TOKENS", "CREATED", "PASSWORD CHANGED"],
                [[r["name"], r["role"], r["active_tokens"], r["created_at"], r["password_changed_at"]] for r in rows])


@users.command("remove")
@click.argument("name", type=USER_NAME)
@pass_app
def remove(app: AppContext, name: str) -> None:
    """Remove a user, their tokens and their logins."""
    from orchestrator.accounts import service

    service.remove_user(app.database(), name, actor=_actor())
    click.echo(f"removed user {name}")


@users.command("password")
@click.argument("name", type=USER_NAME)
@password_file_option
@pass_app
def password(app: AppContext, name: str, password_file: Path | None) -> None:
    """Set a new password; the user's web logins end (their tokens stay)."""
    from orchestrator.accounts import service

    db = app.database()
    service.get_user(db, name)  # an unknown name is refused before a password is asked for
    service.set_password(db, name, _password(password_file), actor=_actor())
    click.echo(f"password of {name} changed; their web logins have ended")


@users.command("role")
@click.argument("name", type=USER_NAME)
@click.argument("role", metavar="ROLE")
@pass_app
def role(app: AppContext, name: str, role: str) -> None:
    """Give a user another role: viewer, operator or admin (in force at their next request)."""
    from orchestrator.accounts import service
    from orchestrator.accounts.roles import parse_role

    user = service.set_role(app.database(), name, parse_role(role, field="ROLE"), actor=_actor())
    click.echo(f"{user['name']} is now {user['role']}")


@click.group()
def tokens() -> None:
    """API tokens of users (Authorization: Bearer ...), stored hashed and shown once."""


@tokens.command("create")
@click.option("--user", "user", type=USER_NAME, required=True, help="Whose token it is.")
@click.option("--expires", type=ExpiresType(), default=DEFAULT_EXPIRES, show_default=True,
              help="How long it works (e.g. 30d), or never.")
@click.option("--scope", type=click.Choice(("read", "write")), default="write", show_default=True,
              help="read: GET requests only; write: all the user's role allows.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the token included, once).")
@pass_app
def create(app: AppContext, user: str, expires: float | None, scope: str, as_json: bool) -> None:
    """Create a token and print it: this is the only time it is shown."""
    from orchestrator.accounts import service
    from orchestrator.accounts.roles import Scope

    row, token = service.create_token(app.database(), user, Scope(scope), expires, actor=_actor())
    if as_json:
        print_json({**row, "token": token})
        return
    until = row["expires_at"].strftime("%Y-%m-%d %H:%M:%S UTC") if row["expires_at"] else "never"
    click.echo(f"token {row['id']} for {user} (scope {scope}, expires {until}); it is shown only now:", err=True)
    click.echo(token)


@tokens.command("list")
@click.option("--user", "user", type=USER_NAME, help="Only this user's tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def list_tokens(app: AppContext, user: str | None, as_json: bool) -> None:
    """Tokens by id: user, scope, state (active, expired, revoked); never the token itself."""
    from orchestrator.accounts import service

    rows = service.list_tokens(app.database(), user)
    if as_json:
        print_json(rows)
        return
    print_table(["ID", "USER", "SCOPE", "STATE", "CREATED", "EXPIRES", "REVOKED"],
                [[r["id"], r["user"], r["scope"], r["state"], r["created_at"], r["expires_at"], r["revoked_at"]]
                 for r in rows])


@tokens.command("revoke")
@click.argument("token_id", metavar="ID", type=click.IntRange(1, MAX_ID))
@pass_app
def revoke(app: AppContext, token_id: int) -> None:
    """Revoke a token: it stops working at once."""
    from orchestrator.accounts import service

    row = service.revoke_token(app.database(), token_id, actor=_actor())
    click.echo(f"token {row['id']} of {row['user']} revoked")
