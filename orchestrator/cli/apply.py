"""`orchestrator apply -f FILE`: make the registry match a declarative file, idempotently."""

from __future__ import annotations

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import print_json
from orchestrator.components.apply_file import load_file
from orchestrator.components.registry import Registry

_SIGN = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}


@click.command()
@click.option("-f", "--file", "path", required=True, help="YAML or JSON file ('-' for stdin).")
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.option("--prune", is_flag=True, help="Also remove components that are not in the file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def apply(app: AppContext, path: str, dry_run: bool, prune: bool, as_json: bool) -> None:
    """Register the components declared in a file (all or nothing)."""
    specs, pages = load_file(path)
    need_plans = any(s.plan for s in specs)
    registry = Registry(app.database(), plan_names=app.plan_names() if need_plans else None)
    page_changes: list[tuple[str, str]] = []

    def sync_pages(session, names: set[str]) -> None:
        if pages or prune:  # a file that declares no pages leaves the pages alone unless it prunes
            from orchestrator.components.statuspages import sync

            page_changes.extend(sync(session, pages, names, prune=prune, actor=registry.actor, clock=registry.clock))

    changes = registry.apply(specs, prune=prune, dry_run=dry_run, then=sync_pages)
    if as_json:
        print_json({
            "dry_run": dry_run,
            "changes": [{"action": c.action, "name": c.name, "fields": c.changed_fields()} for c in changes],
            "status_pages": [{"action": action, "name": name} for action, name in page_changes],
        })
        return
    for action, name in page_changes:
        if action != "unchanged" or dry_run:
            click.echo(f"{_SIGN[action]} status page {name}")
    counts = {k: 0 for k in _SIGN}
    for change in changes:
        counts[change.action] += 1
        if change.action != "unchanged" or dry_run:
            fields = f" ({', '.join(change.changed_fields())})" if change.action == "update" else ""
            click.echo(f"{_SIGN[change.action]} {change.name}{fields}")
    verb = "would change" if dry_run else "changed"
    click.echo(f"{verb}: {counts['create']} created, {counts['update']} updated, {counts['delete']} removed, "
               f"{counts['unchanged']} unchanged")
