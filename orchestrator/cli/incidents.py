"""`orchestrator incidents ...`: list, show, acknowledge, approve and resolve incidents."""

from __future__ import annotations

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import print_fields, print_json, print_table
from orchestrator.cli.params import DURATION, INCIDENT_ID, NAME
from orchestrator.core.errors import NotFoundError
from orchestrator.incidents import operator


@click.group()
def incidents() -> None:
    """Incident history and the human side of recovery."""


@incidents.command("list")
@click.option("--component", type=NAME, help="Only this component's incidents.")
@click.option("--status", help="open, recovering, awaiting_approval, blocked, escalated or resolved.")
@click.option("--since", type=DURATION, help="Opened within this long (7d).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def list_(app: AppContext, component: str | None, status: str | None, since: float | None, as_json: bool) -> None:
    """Incidents, newest first."""
    rows = operator.list_incidents(app.database(), component=component, status=status, since_s=since)
    if component is not None and not rows:
        _known_component(app, component)
    if as_json:
        print_json(rows)
        return
    print_table(["ID", "COMPONENT", "KIND", "STATUS", "RESOLUTION", "OPENED", "BLOCKED BY", "REASON"],
                [[r["id"], r["component"], r["kind"], r["status"], r["resolution"], r["opened_at"], r["blocked_by"],
                  r["reason"]] for r in rows])


def _known_component(app: AppContext, name: str) -> None:
    """Refuse a --component filter that names nothing: neither a registered component nor one that
    ever had an incident (a removed component's history can still be listed)."""
    from sqlalchemy import exists, or_, select

    from orchestrator.db.models import Component, Incident

    with app.database().read() as session:
        known = session.scalar(select(or_(exists().where(Component.name == name),
                                          exists().where(Incident.component_name == name))))
    if not known:
        raise NotFoundError(f"no component named {name!r}", field="--component")


@incidents.command("show")
@click.argument("incident_id", metavar="ID", type=INCIDENT_ID)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def show(app: AppContext, incident_id: int, as_json: bool) -> None:
    """One incident with every step attempt, its output and verification."""
    data = operator.show_incident(app.database(), incident_id)
    if as_json:
        print_json(data)
        return
    print_fields([(k, v) for k, v in data.items() if k not in ("journal", "notifications", "notes", "alerts", "events")])
    for alert in data["alerts"]:
        click.echo(f"\nalert {alert['name']} ({alert['origin']}): {alert['status']}")
        click.echo("  labels: " + " ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items())))
        for key, value in sorted(alert["annotations"].items()):
            click.echo(f"  {key}: {value}")
    for row in data["journal"]:
        click.echo(f"\nstep {row['step_index']} attempt {row['attempt']} {row['strategy']}: {row['status']}"
                   f"{'' if row['executed'] else ' (not executed)'}")
        for key in ("description", "detail", "skip_reason"):
            if row[key]:
                click.echo(f"  {key}: {row[key]}")
        verification = row["verification"] or {}
        if verification.get("mode"):
            click.echo(f"  verification: {verification.get('mode')} passed={verification.get('passed')} "
                       f"{verification.get('reason', '')}")
        if row["output"]:
            click.echo("  output:\n" + "\n".join(f"    {line}" for line in row["output"].splitlines()))
    for note in data["notifications"]:
        click.echo(f"\nnotified {note['channel']}: {note['status']} ({note['event']})")
    for event in data["events"]:
        if event["kind"] in ("reminder", "escalation"):
            click.echo(f"\n{event['kind']} at {event['at']:%Y-%m-%d %H:%M:%S}: {event['reason']}")
    for note in data["notes"]:
        click.echo(f"\nnote by {note['author']} at {note['at']:%Y-%m-%d %H:%M:%S}:")
        click.echo("\n".join(f"  {line}" for line in note["text"].splitlines()))


@incidents.command("ack")
@click.argument("incident_id", metavar="ID", type=INCIDENT_ID)
@pass_app
def ack(app: AppContext, incident_id: int) -> None:
    """Acknowledge an incident (a human has seen it)."""
    data = operator.ack(app.database(), incident_id)
    click.echo(f"incident {incident_id} acknowledged by {data['acked_by']}")


@incidents.command("approve")
@click.argument("incident_id", metavar="ID", type=INCIDENT_ID)
@pass_app
def approve(app: AppContext, incident_id: int) -> None:
    """Approve the step an incident is waiting for."""
    data = operator.approve(app.database(), incident_id)
    click.echo(f"incident {incident_id} approved by {data['approved_by']}")


@incidents.command("resolve")
@click.argument("incident_id", metavar="ID", type=INCIDENT_ID)
@click.option("--reason", required=True, help="Why it is closed (kept in its timeline and the audit log).")
@pass_app
def resolve(app: AppContext, incident_id: int, reason: str) -> None:
    """Close an incident by hand (resolution manual): automation stops working on it."""
    data = operator.resolve(app.database(), incident_id, reason)
    click.echo(f"incident {incident_id} resolved ({data['resolution']}): {data['status_reason']}")


@incidents.command("update")
@click.argument("incident_id", metavar="ID", type=INCIDENT_ID)
@click.argument("message")
@click.option("--state", type=click.Choice(["investigating", "identified", "monitoring", "resolved"]),
              default="investigating", show_default=True, help="Where the incident stands, as its audience is told.")
@click.option("--public", is_flag=True, help="Show it on the status pages of its component and in their feeds.")
@pass_app
def update(app: AppContext, incident_id: int, message: str, state: str, public: bool) -> None:
    """Post a human-written update on an incident (it never changes the incident's own status)."""
    from orchestrator.incidents.updates import add_update

    row = add_update(app.database(), incident_id, message, state=state, public=public)
    click.echo(f"incident {incident_id}: {row['state']} update {row['id']} posted"
               f"{' publicly' if row['public'] else ' (private)'}")
