"""`orchestrator statuspage ...`: declare, list and remove public status pages."""

from __future__ import annotations

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import print_json, print_table
from orchestrator.cli.params import NAME


@click.group()
def statuspage() -> None:
    """Public status pages (/status/NAME): display names and states only."""


@statuspage.command("add")
@click.argument("name", type=NAME)
@click.option("--title", required=True, help="The page's heading.")
@click.option("--group", "groups", multiple=True, required=True, metavar="GROUP=NAME[:DISPLAY],...",
              help='A group of components, e.g. "API=api,auth:Login" (repeat for more groups, in order).')
@click.option("--replace", is_flag=True, help="Redefine the page when it exists.")
@pass_app
def add(app: AppContext, name: str, title: str, groups: tuple[str, ...], replace: bool) -> None:
    """Create a status page served at /status/NAME."""
    from orchestrator.components import statuspages

    spec = statuspages.page_spec(name, title, [statuspages.parse_group(g) for g in groups])
    page = statuspages.add(app.database(), spec, replace=replace)
    click.echo(f"status page {page['name']} at {page['url']} ({len(page['groups'])} groups)")


@statuspage.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """Every status page."""
    from orchestrator.components import statuspages

    pages = statuspages.list_pages(app.database())
    if as_json:
        print_json(pages)
        return
    print_table(["NAME", "TITLE", "URL", "GROUPS"],
                [[p["name"], p["title"], p["url"],
                  "; ".join(f"{g['name']}={','.join(c['component'] for c in g['components'])}" for g in p["groups"])]
                 for p in pages])


@statuspage.command("remove")
@click.argument("name", type=NAME)
@pass_app
def remove(app: AppContext, name: str) -> None:
    """Remove a status page (its components are not touched)."""
    from orchestrator.components import statuspages

    statuspages.remove(app.database(), name)
    click.echo(f"status page {name} removed")
