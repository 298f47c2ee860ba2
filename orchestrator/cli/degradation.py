"""`orchestrator degradation ...`: the published degradation levels, their history, operator overrides."""

from __future__ import annotations

from datetime import timedelta

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import print_fields, print_json, print_table
from orchestrator.cli.params import DURATION
from orchestrator.core.clock import SYSTEM_CLOCK
from orchestrator.core.errors import NotFoundError
from orchestrator.core.states import DegradationLevel
from orchestrator.db.audit import Actor
from orchestrator.degradation import actions, store

_SCOPE_HELP = "A label selector scope (team=checkout); default: the global level."
#: level names in any case (`degradation set MINIMAL`)
_LEVELS = click.Choice([level.value for level in DegradationLevel], case_sensitive=False)


@click.group()
def degradation() -> None:
    """Graceful-degradation levels that applications read (normal, degraded, minimal, emergency)."""


@degradation.command("status")
@click.option("--scope", help=_SCOPE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def status(app: AppContext, scope: str | None, as_json: bool) -> None:
    """The level each scope publishes now (held, computed, until when it holds), why, its feature map,
    and what the orchestrator applies to itself (a frozen automation, its own overload)."""
    db = app.database()
    with db.read() as session:
        docs = store.stored(session, SYSTEM_CLOCK.now())
        waiting = {k: o for k, o in store.active_overrides(session, SYSTEM_CLOCK.now()).items() if k not in docs}
    if scope is not None:
        name = store.scope_name(scope)
        docs = {name: docs[name]} if name in docs else {}
        if not docs:
            raise NotFoundError(f"no level published for scope {name!r}", field="scope")
    if as_json:
        print_json(list(docs.values()))
        return
    for name, override in waiting.items():
        click.echo(f"scope {name}: override {override.level.value} until {override.expires_at:%Y-%m-%d %H:%M:%S}Z "
                   f"set, not yet published (no daemon running?)")
    if not docs:
        click.echo("no level published yet: start the daemon (`orchestrator run`); it publishes within seconds")
        return
    for doc in docs.values():
        override = doc["override"]
        pairs = [("scope", doc["scope"]), ("level", doc["level"]), ("since", doc["since"]),
                 ("version", doc["version"]), ("computed", doc["computed"]), ("holds", _holds(doc))]
        if override:
            pairs.append(("override", f"{override['level']} by {override['actor']} until "
                                      f"{override['expires_at']:%Y-%m-%d %H:%M:%S}Z: {override['reason']}"))
        pairs.append(("reasons", "; ".join(doc["reasons"]) or "-"))
        pairs.append(("features", ", ".join(f"{k}={_show(v)}" for k, v in doc["features"].items())))
        pairs += [("orchestrator", line) for line in actions.notes(doc)]
        print_fields(pairs)
        click.echo("")


@degradation.command("history")
@click.option("--scope", help=_SCOPE_HELP + " Default: every scope.")
@click.option("--since", type=DURATION, help="Changes within this long (7d).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def history(app: AppContext, scope: str | None, since: float | None, limit: int, as_json: bool) -> None:
    """Every level change, newest first: from, to, why, and who for an override."""
    db = app.database()
    name = None if scope is None else store.scope_name(scope)
    with db.read() as session:
        rows = store.history(session, scope=name, limit=limit,
                             since=None if since is None else SYSTEM_CLOCK.now() - timedelta(seconds=since))
    if as_json:
        print_json(rows)
        return
    print_table(["AT", "SCOPE", "FROM", "TO", "BY", "REASONS"],
                [[r["at"], r["scope"], r["from"], r["to"], r["actor"] or "policy", "; ".join(r["reasons"])]
                 for r in rows])


@degradation.command("set")
@click.argument("level", type=_LEVELS, metavar="LEVEL")
@click.option("--for", "for_s", type=DURATION, required=True, help="How long (30m); at most 7d.")
@click.option("--reason", required=True, help="Why; shown to everyone who reads the level.")
@click.option("--scope", help=_SCOPE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def set_(app: AppContext, level: str, for_s: float, reason: str, scope: str | None, as_json: bool) -> None:
    """Publish LEVEL whatever the policies say, until --for passes or `clear`."""
    name = store.scope_name(scope)
    override = store.set_override(app.database(), name, level, for_s, reason, actor=Actor())
    if as_json:
        print_json({"scope": name, **override.view()})
        return
    click.echo(f"scope {name}: {override.level.value} until {override.expires_at:%Y-%m-%d %H:%M:%S}Z "
               f"(the daemon publishes it within seconds)")


@degradation.command("clear")
@click.option("--scope", help=_SCOPE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def clear(app: AppContext, scope: str | None, as_json: bool) -> None:
    """End the override in force; the policies decide again."""
    name = store.scope_name(scope)
    override = store.clear_override(app.database(), name, actor=Actor())
    if as_json:
        print_json({"scope": name, "cleared": override.view()})
        return
    click.echo(f"scope {name}: override {override.level.value} cleared; the policies decide again")


def _holds(doc: dict) -> str:
    """Until when the published level holds, in words."""
    if doc["override"]:
        return f"until {doc['override']['expires_at']:%Y-%m-%d %H:%M:%S}Z (operator override)"
    if doc.get("held_until") is not None:
        return (f"{doc['level']} held until {doc['held_until']:%Y-%m-%d %H:%M:%S}Z, then one level down "
                f"if the rules keep asking for {doc['computed']}")
    return "as long as the rules ask for it"


def _show(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
