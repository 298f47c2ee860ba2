"""Printing: human tables (rich) or stable JSON. Cell text is never parsed as markup."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # rich is imported when a table is printed: the daemon never needs it
    from rich.console import Console
    from rich.text import Text


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, default=_default, indent=2, sort_keys=False))


def console() -> Console:
    # Piped output gets a wide fixed width so tables are not squeezed into 80 columns.
    from rich.console import Console

    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "200"))
    return Console(width=width, highlight=False, markup=False, emoji=False)


def cell(value: Any) -> Text:
    from rich.text import Text

    if value is None:
        return Text("-", style="dim")
    if isinstance(value, datetime):
        return Text(value.strftime("%Y-%m-%d %H:%M:%S"))
    if isinstance(value, float):
        return Text(f"{value:g}")
    if isinstance(value, (list, tuple)):
        return Text(", ".join(str(v) for v in value) or "-")
    if isinstance(value, dict):
        return Text(", ".join(f"{k}={v}" for k, v in value.items()) or "-")
    return Text(str(value))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    from rich.table import Table

    table = Table(*columns, title=title, show_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    console().print(table)


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, show_edge=False, box=None)
    for key, value in pairs:
        table.add_row(Text(key, style="bold"), cell(value))
    console().print(table)
