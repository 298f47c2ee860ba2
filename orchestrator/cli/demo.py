"""`orchestrator demo`: the whole loop on this machine in a few seconds, nothing to set up."""

from __future__ import annotations

import click

from orchestrator.core import logs
from orchestrator.core.config import state_dir


@click.command()
@click.option("--keep-running", is_flag=True, help="Keep the daemon and services running after the scenario.")
@click.option("--quiet", is_flag=True, help="Only the demo's own lines, not the daemon's log.")
def demo(keep_running: bool, quiet: bool) -> None:
    """Start three loopback services, crash one, and watch the verified recovery."""
    from orchestrator.demo.scenario import run_demo

    logs.setup("warning" if quiet else "info")
    raise click.exceptions.Exit(run_demo(state_dir(), lambda line: click.secho(f"demo: {line}", bold=True),
                                         keep_running=keep_running))
