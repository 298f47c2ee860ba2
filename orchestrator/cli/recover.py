"""`orchestrator recover NAME`: run a recovery plan by hand, in the foreground."""

from __future__ import annotations

import click
from sqlalchemy import select

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.params import NAME
from orchestrator.core.config import Switches
from orchestrator.core.errors import InputError
from orchestrator.core.redaction import redact, secret_values
from orchestrator.db.models import Component
from orchestrator.incidents import operator
from orchestrator.plans import load_plans
from orchestrator.recovery.coordinator import RecoveryCoordinator
from orchestrator.recovery.health_view import DbHealthView

#: Seconds given to an interrupted run to end its current step.
SHUTDOWN_TIMEOUT_S = 10.0


@click.command()
@click.argument("name", type=NAME)
@click.option("--plan", type=NAME, help="Plan to run (default: the component's own).")
@click.option("--dry-run", is_flag=True, help="Print what would run; run, record and send nothing.")
@pass_app
def recover(app: AppContext, name: str, plan: str | None, dry_run: bool) -> None:
    """Start a recovery of NAME now and follow it step by step."""
    if app.plans_path is None:
        raise InputError("no plan file found (give --plans or set ORCHESTRATOR_PLANS)", field="--plans")
    plans = load_plans(app.plans_path)
    db = app.database()
    secrets = _secrets_of(db, name)
    coordinator = RecoveryCoordinator(db, plans, health=DbHealthView(db), switches=Switches.from_env(),
                                      settle_s=0.0, report=lambda line: click.echo(redact(line, secrets)))
    try:
        if dry_run:
            for line in coordinator.dry_run(name, plan):
                click.echo(line)
            click.echo("dry run: nothing was run, recorded or sent")
            return
        incident_id = coordinator.recover(name, plan, wait=True)
    finally:
        coordinator.shutdown(SHUTDOWN_TIMEOUT_S)
    status = operator.show_incident(db, incident_id)["status"]
    click.echo(f"incident {incident_id}: {status}")
    if status == "escalated":
        raise click.exceptions.Exit(1)


def _secrets_of(db, name: str) -> frozenset[str]:
    """The component's secret values: the lines printed (the --dry-run argv) are redacted with them."""
    with db.read() as session:
        row = session.scalar(select(Component).where(Component.name == name))
        return secret_values(row) if row is not None else frozenset()
