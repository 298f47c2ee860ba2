"""`orchestrator plans validate` and `orchestrator strategies list`."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import print_json, print_table
from orchestrator.core.errors import InputError


@click.group()
def plans() -> None:
    """Recovery plan file commands."""


@plans.command("validate")
@click.argument("file", required=False)
@pass_app
def validate(app: AppContext, file: str | None) -> None:
    """Validate recovery_strategies.json (structure, strategies, their params)."""
    from orchestrator.plans import load_plans

    path = Path(file) if file else app.plans_path
    if path is None:
        raise InputError("no plan file found (give FILE or --plans)", field="FILE")
    plan_set = load_plans(path)
    steps = sum(len(p.steps) for p in plan_set.plans.values())
    click.echo(f"{path}: valid ({len(plan_set.plans)} plans, {steps} steps)")


@click.group()
def strategies() -> None:
    """Recovery strategy plugins."""


@strategies.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(as_json: bool) -> None:
    """List installed strategies (entry points in group orchestrator.strategies)."""
    from orchestrator.plugins.registry import installed_strategies

    rows = installed_strategies()
    if as_json:
        print_json([{"name": n, "module": m, "package": p} for n, m, p in rows])
        return
    print_table(["NAME", "MODULE", "PACKAGE"], rows)
