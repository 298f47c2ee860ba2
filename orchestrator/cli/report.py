"""`orchestrator report`: incident history and component health over a window, to stdout or a file."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.params import DURATION, NAME
from orchestrator.reports.render import FORMATS


@click.command()
@click.option("--since", type=DURATION, default="30d", show_default=True, help="How far back the report looks.")
@click.option("--component", type=NAME, help="Only this component (and its incidents).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True,
              help="html: one self-contained file; csv: one row per incident.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file instead of stdout.")
@pass_app
def report(app: AppContext, since: float, component: str | None, fmt: str, output: Path | None) -> None:
    """Uptime, checks, latency, incidents and every recovery step over a window."""
    from orchestrator.reports.model import build_report
    from orchestrator.reports.render import render

    text = render(build_report(app.database(), since, component=component), fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(f"wrote {fmt} report to {output}", err=True)
