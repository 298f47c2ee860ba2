"""`orchestrator report`: incident history and component health over a window, written to a file.

Without ``-o`` the report goes to a new file in the current directory and its path is printed (an HTML
report dumped on a terminal helps nobody); ``-o -`` writes to stdout. Reading a lot of history shows a
progress bar on stderr (when stderr is a terminal).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import click
from sqlalchemy import func, select

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.params import DURATION, NAME
from orchestrator.core.clock import SYSTEM_CLOCK
from orchestrator.core.errors import InputError
from orchestrator.reports.render import FORMATS

EXTENSIONS = {"html": "html", "markdown": "md", "json": "json", "csv": "csv"}
#: rolled-up minutes plus raw results in the window above which the progress bar is shown
LARGE_HISTORY_ROWS = 200_000


def _history_rows(db, since_s: float) -> int:
    """How many history rows the report will read (two index-only counts)."""
    from orchestrator.db.models import CheckResultRow, CheckRollup

    start = SYSTEM_CLOCK.now() - timedelta(seconds=since_s)
    with db.read() as session:
        return int(session.scalar(select(func.count()).where(CheckRollup.minute >= start)) or 0) + int(
            session.scalar(select(func.count()).where(CheckResultRow.checked_at >= start)) or 0)


def _build(db, since: float, component: str | None):
    from rich.console import Console
    from rich.progress import Progress

    from orchestrator.reports.model import STAGES, build_report

    if not sys.stderr.isatty() or _history_rows(db, since) < LARGE_HISTORY_ROWS:
        return build_report(db, since, component=component)
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("reading history", total=len(STAGES))

        def stage(name: str) -> None:
            bar.update(task, description=f"reading {name}", completed=STAGES.index(name))

        report = build_report(db, since, component=component, progress=stage)
        bar.update(task, completed=len(STAGES))
    return report


@click.command()
@click.option("--since", type=DURATION, default="30d", show_default=True, help="How far back the report looks.")
@click.option("--component", type=NAME, help="Only this component (and its incidents).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True,
              help="html: one self-contained file with pictures; csv: one row per incident.")
@click.option("-o", "--output", help="Write to this file ('-': stdout) [default: a new file here].")
@pass_app
def report(app: AppContext, since: float, component: str | None, fmt: str, output: str | None) -> None:
    """Uptime, checks, latency, incidents and every recovery step over a window."""
    from orchestrator.reports.render import render

    path = _output_path(output, fmt)
    text = render(_build(app.database(), since, component), fmt)
    if path is None:
        click.echo(text, nl=False)
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}", field="--output") from None
    click.echo(str(path))


def _output_path(output: str | None, fmt: str) -> Path | None:
    """Where the report goes (None: stdout); a path whose directory cannot take it is refused before the
    history is read, so a typo costs nothing."""
    if output == "-":
        return None
    path = Path(output) if output else Path(f"orchestrator-report-{SYSTEM_CLOCK.now():%Y%m%d-%H%M%S}.{EXTENSIONS[fmt]}")
    parent = path.parent
    if path.is_dir():
        raise InputError(f"{path} is a directory", field="--output")
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: no directory {parent}", field="--output")
    if not os.access(parent, os.W_OK | os.X_OK) or path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"cannot write {path}: permission denied", field="--output")
    return path
