"""`orchestrator config show`: the effective settings and where each came from."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import print_json, print_table
from orchestrator.core.config import effective
from orchestrator.core.durations import format_duration
from orchestrator.core.redaction import redact


@click.group()
def config() -> None:
    """The configuration file shared by the service and the CLI (orchestrator.toml)."""


def _shown(key: str, value: object) -> object:
    """A value fit to print: paths as text, durations in seconds, URLs with passwords masked."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def show(app: AppContext, as_json: bool) -> None:
    """Effective settings (flag, then variable, then config file, then default) and their sources.

    Secrets are masked (the password in a database URL). `run` and `web` flags given on their own
    command line override http, api_token_file, retention and sentinels for that command.
    """
    from orchestrator.history.retention import DEFAULT_RAW_RETENTION_S, DEFAULT_ROLLUP_RETENTION_S

    settings = effective(app.config, db_flag=app.db_flag, plans_flag=app.plans_flag,
                         defaults={"retention_raw": DEFAULT_RAW_RETENTION_S,
                                   "retention_rollups": DEFAULT_ROLLUP_RETENTION_S})
    if as_json:
        print_json({key: {"value": _shown(key, s.value), "source": s.source} for key, s in settings.items()})
        return
    rows = []
    for key, setting in settings.items():
        value = _shown(key, setting.value)
        if key.startswith("retention_") and isinstance(value, float):
            value = format_duration(value)
        rows.append([key, value, setting.source])
    print_table(["KEY", "VALUE", "SOURCE"], rows)
