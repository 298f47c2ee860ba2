"""`orchestrator demo`: the whole loop on this machine in a few seconds, nothing to set up."""

from __future__ import annotations

import click

from orchestrator.core import logs
from orchestrator.core.config import state_dir


@click.command()
@click.option("--keep-running", is_flag=True, help="Keep the daemon and services running after the scenario.")
@click.option("--quiet", is_flag=True, help="Only the demo's own lines, not the daemon's log.")
@click.option("--before-crash", type=click.FloatRange(0), default=5.0, show_default=True, metavar="SECONDS",
              help="Seconds to open the status page before a service is crashed.")
@click.option("--linger", type=click.FloatRange(0), default=10.0, show_default=True, metavar="SECONDS",
              help="Seconds the page stays up after the recovery.")
def demo(keep_running: bool, quiet: bool, before_crash: float, linger: float) -> None:
    """Start three loopback services, crash one, and watch the verified recovery (also on a live page)."""
    from orchestrator.demo.scenario import run_demo

    logs.setup("warning" if quiet else "info")
    raise click.exceptions.Exit(run_demo(state_dir(), lambda line: click.secho(f"demo: {line}", bold=True),
                                         keep_running=keep_running, before_crash_s=before_crash, linger_s=linger))
