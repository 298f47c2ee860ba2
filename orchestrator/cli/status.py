"""`orchestrator status` (every component at a glance) and `orchestrator check NAME` (one check now)."""

from __future__ import annotations

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import print_json, print_table
from orchestrator.cli.params import NAME
from orchestrator.core.clock import SYSTEM_CLOCK


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """One table of every component's state."""
    from orchestrator.components.views import component_views, instance_views, push_summary
    from orchestrator.degradation import actions, store
    from orchestrator.degradation.scopes import GLOBAL_SCOPE
    from orchestrator.history.drops import describe

    now = SYSTEM_CLOCK.now()
    with app.database().read() as session:
        views = component_views(session, now)
        instances = [i for i in instance_views(session, now) if i["alive"]]
        top = store.stored(session, now).get(GLOBAL_SCOPE)
    if top is not None and not instances:  # a stopped daemon's overload is no longer true
        top = {**top, "self_protection": None}
    notes = actions.notes(top)
    if as_json:
        print_json({"instances": instances, "components": views, "orchestrator": notes})
        return
    if not instances:
        click.echo("daemon: not running")
    for inst in instances:
        view = "reliable" if inst["view_reliable"] else "UNRELIABLE (sentinels failing: no state changes)"
        dropped = f", {inst['dropped_results']} results dropped" if inst["dropped_results"] else ""
        click.echo(f"daemon: {inst['id']} up since {inst['started_at']:%Y-%m-%d %H:%M:%S}, view {view}{dropped}")
        if inst["writes_failing_since"] is not None:
            click.echo(f"warning: database writes failing since {inst['writes_failing_since']:%Y-%m-%d %H:%M:%S} "
                       "(results buffered in memory)")
        if any(inst["drops"].values()):
            click.echo(f"not written: {describe(inst['drops'])}")
        if inst["plan_warning"]:
            click.echo(f"warning: {inst['plan_warning']}")
    if public_url := app.public_url:
        click.echo(f"page: {public_url}")
    for line in notes:
        click.echo(line)
    pushes = any(v["push"] is not None for v in views)  # a column for push monitors only when there are some
    print_table(
        ["NAME", "STATE", "SINCE", "REASON", "LATENCY", "LAST ERROR", "INCIDENT", *(["PUSH"] if pushes else [])],
        [(v["name"], v["state"], v["state_since"], v["state_reason"],
          None if v["last_latency_ms"] is None else f"{v['last_latency_ms']:.0f}ms",
          v["last_error"], v["open_incident"], *([push_summary(v)] if pushes else [])) for v in views],
    )


@click.command()
@click.argument("name", type=NAME)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def check(app: AppContext, name: str, as_json: bool) -> None:
    """Check one component now and print the result (exit 1 when it fails)."""
    from orchestrator.components.registry import Registry
    from orchestrator.components.targets import effective_check
    from orchestrator.core.redaction import redact_view, secret_values
    from orchestrator.health.checkers import get_checker

    registry = Registry(app.database())
    with registry.db.read() as session:
        row = registry.get_row(session, name)
        spec = effective_check(row)
        timeout_s, secrets = row.timeout_s, secret_values(row)
    result = get_checker(spec.kind).check(spec, timeout_s=timeout_s)
    data = redact_view({
        "name": name, "ok": result.ok, "latency_ms": round(result.latency_ms, 1),
        "status_code": result.status_code, "error": result.error, "bytes_read": result.bytes_read,
        "target": spec.url or f"{spec.host}:{spec.port}" if spec.kind != "command" else spec.command,
    }, secrets)
    if as_json:
        print_json(data)
    else:
        verdict = "ok" if result.ok else f"FAILED: {data['error']}"
        code = f" status={result.status_code}" if result.status_code is not None else ""
        click.echo(f"{name}: {verdict} in {result.latency_ms:.1f}ms{code}")
    if not result.ok:
        raise click.exceptions.Exit(1)
