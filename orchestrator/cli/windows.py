"""`orchestrator maintenance ...` and `orchestrator silence ...`: windows over a label selector."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import print_json, print_table
from orchestrator.cli.params import DURATION, fields_as_flags
from orchestrator.core.durations import format_duration

_FLAGS = {"selector": "--selector", "cron": "--cron", "duration": "--duration", "tz": "--tz", "start": "--start",
          "end": "--end", "for": "--for", "reason": "--reason", "id": "ID"}


#: names fields in errors as the flags the operator typed (``for`` → ``--for``)
_flag_errors = fields_as_flags(lambda field: _FLAGS.get(field, field))


def _service(app: AppContext):
    from orchestrator.components.windows import WindowService

    return WindowService(app.database())


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _schedule(view: dict[str, Any]) -> str:
    if view["recurring"]:
        return f"{view['cron']} {view['tz']} for {format_duration(view['duration_s'])}"
    return f"{_when(view['starts_at'])} → {_when(view['ends_at'])}"


def _print(views: list[dict[str, Any]], as_json: bool, title: str) -> None:
    if as_json:
        print_json(views)
        return
    print_table(["id", "selector", "schedule", "active until", "next start", "reason"],
                [[v["id"], v["selector"], _schedule(v), _when(v["active_until"]), _when(v["next_start"]),
                  v["reason"] or "-"] for v in views], title=title)


def _summary(view: dict[str, Any]) -> str:
    state = f"open until {_when(view['active_until'])}" if view["active"] else f"next {_when(view['next_start'])}"
    return f"{view['kind']} {view['id']}: {view['selector']}, {_schedule(view)} ({state})"


@click.group()
def maintenance() -> None:
    """Maintenance windows over a label selector: held as in maintenance (no incidents, no actions)."""


@maintenance.command("add")
@click.option("--selector", required=True, help="Components with these labels: key=value[,key=value].")
@click.option("--cron", help="Recurring: opens at these times ('0 2 * * SUN'), in --tz.")
@click.option("--duration", type=DURATION, help="How long each recurring window lasts (2h).")
@click.option("--tz", help="Time zone of --cron and of --start/--end without an offset (UTC).")
@click.option("--start", help="One-off: from (ISO 8601; default now).")
@click.option("--end", help="One-off: until (ISO 8601).")
@click.option("--for", "for_s", type=DURATION, help="One-off: for this long from --start (4h).")
@click.option("--reason", help="Shown with the hold, on the page and in reports.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@_flag_errors
def maintenance_add(app: AppContext, selector: str, cron: str | None, duration: float | None, tz: str | None,
                    start: str | None, end: str | None, for_s: float | None, reason: str | None,
                    as_json: bool) -> None:
    """Add a recurring (--cron, --duration) or one-off (--start/--end or --for) maintenance window."""
    from orchestrator.components.windows import WindowKind, WindowRequest

    view = _service(app).add(WindowRequest(WindowKind.MAINTENANCE, selector, cron=cron, duration_s=duration, tz=tz,
                                           start=start, end=end, for_s=for_s, reason=reason))
    print_json(view) if as_json else click.echo(_summary(view))


@maintenance.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def maintenance_list(app: AppContext, as_json: bool) -> None:
    """Every maintenance window, with when it is open next."""
    from orchestrator.components.windows import WindowKind

    _print(_service(app).list(WindowKind.MAINTENANCE), as_json, "maintenance windows")


@maintenance.command("remove")
@click.argument("window_id", metavar="ID", type=click.IntRange(1))
@pass_app
@_flag_errors
def maintenance_remove(app: AppContext, window_id: int) -> None:
    """Remove maintenance window ID (components held by it are judged again within seconds)."""
    from orchestrator.components.windows import WindowKind

    view = _service(app).remove(WindowKind.MAINTENANCE, window_id)
    click.echo(f"removed {_summary(view)}")


@click.group()
def silence() -> None:
    """Silences over a label selector: notifications muted, automation carries on."""


@silence.command("add")
@click.option("--selector", required=True, help="Components with these labels: key=value[,key=value].")
@click.option("--for", "for_s", type=DURATION, help="For this long from --start (4h).")
@click.option("--start", help="From (ISO 8601; default now).")
@click.option("--end", help="Until (ISO 8601), instead of --for.")
@click.option("--tz", help="Time zone of --start/--end without an offset (UTC).")
@click.option("--reason", help="Shown in lists, on the page and in reports.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
@_flag_errors
def silence_add(app: AppContext, selector: str, for_s: float | None, start: str | None, end: str | None,
                tz: str | None, reason: str | None, as_json: bool) -> None:
    """Mute the notifications of the components a selector picks, for --for or until --end."""
    from orchestrator.components.windows import WindowKind, WindowRequest

    view = _service(app).add(WindowRequest(WindowKind.SILENCE, selector, tz=tz, start=start, end=end, for_s=for_s,
                                           reason=reason))
    print_json(view) if as_json else click.echo(_summary(view))


@silence.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def silence_list(app: AppContext, as_json: bool) -> None:
    """Every silence, active or to come (and past ones until removed)."""
    from orchestrator.components.windows import WindowKind

    _print(_service(app).list(WindowKind.SILENCE), as_json, "silences")


@silence.command("remove")
@click.argument("window_id", metavar="ID", type=click.IntRange(1))
@pass_app
@_flag_errors
def silence_remove(app: AppContext, window_id: int) -> None:
    """Remove silence ID: notifications are sent again at once."""
    from orchestrator.components.windows import WindowKind

    view = _service(app).remove(WindowKind.SILENCE, window_id)
    click.echo(f"removed {_summary(view)}")
