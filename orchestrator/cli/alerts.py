"""`orchestrator alerts ...`: the alerts posted to the API (docs/alerts.md), as `GET /api/v1/alerts` lists them."""

from __future__ import annotations

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import print_json, print_table
from orchestrator.cli.params import NAME
from orchestrator.incidents.alerts import list_alerts

#: alerts printed at most (newest first), as the API's largest page
MAX_LIMIT = 1000


@click.group()
def alerts() -> None:
    """Alerts received from Alertmanager or the generic form, matched to a component or not."""


@alerts.command("list")
@click.option("--status", type=click.Choice(["firing", "resolved"]), help="Only alerts in this status.")
@click.option("--component", type=NAME, help="Only alerts naming this component (registered or not).")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=50, show_default=True,
              help="Print at most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the items of GET /api/v1/alerts).")
@pass_app
def list_(app: AppContext, status: str | None, component: str | None, limit: int, as_json: bool) -> None:
    """Alerts, newest first, with the component and incident each one opened or joined."""
    rows = list_alerts(app.database(), status=status, component=component, limit=limit)
    if as_json:
        print_json(rows)
        return
    print_table(["ID", "ALERT", "STATUS", "COMPONENT", "INCIDENT", "RECEIVED", "RUNBOOK"],
                [[r["id"], r["name"], r["status"], r["component"], r["incident"], r["received_at"], r["runbook_url"]]
                 for r in rows])
