"""The `orchestrator` command. Each command group lives in its own module; all are thin.

A command's module is imported only when that command runs (``COMMANDS`` names them all): `orchestrator
status` loads no web server, migration machinery or recovery code, and `orchestrator --help` none of it.
"""

from __future__ import annotations

import importlib
import logging
import sys
from gettext import gettext as _

import click

from orchestrator import __version__
from orchestrator.cli.context import AppContext
from orchestrator.core import interrupts, logs
from orchestrator.core.errors import OrchestratorError


class AppGroup(click.Group):
    """A group whose every known error becomes one line on stderr and its exit status, never a traceback.

    Bad input exits 2 (Click usage errors and InputError alike); an unreachable database exits 1.
    Its commands load on first use from ``COMMANDS`` (Click's lazy-loading group pattern); the list in
    its help comes from the same table, so printing it imports no command module.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attr, _summary = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"orchestrator.cli.{module}"), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"orchestrator.cli.{module}.{attr} is not a click command")
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """Click's, with "did you mean" drawn from every command, loaded or not (Click >= 8.4 suggests
        from the loaded ones only)."""
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            no_such = getattr(click.exceptions, "NoSuchCommand", None)
            if no_such is None or not isinstance(exc, no_such):
                raise
            raise no_such(exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their summaries, as Click's own listing prints them, from ``COMMANDS``."""
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name) or click.Command(name, help=COMMANDS[name][2])
            if not cmd.hidden:
                rows.append((name, cmd))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _cmd in rows)  # as click.Group does
        with formatter.section(_("Commands")):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rc = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C (and SIGTERM) into Abort
                interrupts.exit_interrupted(exc.__cause__)
            click.echo("aborted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except OrchestratorError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            interrupts.exit_interrupted(exc)
        except Exception as exc:
            if "--debug" in argv:
                raise
            click.echo(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
            sys.exit(1)
        # Commands signal a status with click's Exit; anything else they return means success.
        sys.exit(rc if isinstance(rc, int) else 0)


@click.group(cls=AppGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--db", "db_flag", metavar="URL",
              help="Database URL [env ORCHESTRATOR_DB_URL; config database_url; default: SQLite in the state dir].")
@click.option("--plans", "plans_flag", metavar="PATH",
              help="recovery_strategies.json [env ORCHESTRATOR_PLANS; config plans; default "
                   "./recovery_strategies.json, then /etc/orchestrator/recovery_strategies.json].")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.version_option(__version__, prog_name="orchestrator")
@click.pass_context
def cli(ctx: click.Context, db_flag: str | None, plans_flag: str | None, debug: bool) -> None:
    """Watch components, record incidents, and recover them safely.

    Settings come from flags, then environment variables, then /etc/orchestrator/orchestrator.toml
    (or the file ORCHESTRATOR_CONFIG names), then defaults: `orchestrator config show`.
    """
    from orchestrator.core.config_file import load_config

    ctx.obj = AppContext(db_flag=db_flag, plans_flag=plans_flag, config=load_config())
    ctx.call_on_close(ctx.obj.close)


#: Every command: the module under orchestrator.cli that defines it, its attribute there, and the first
#: paragraph of its help as `orchestrator --help` lists it, so that listing imports no command module
#: (tests/test_cli_imports.py keeps each summary equal to the command's own help).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "alerts": ("alerts", "alerts", "Alerts received from Alertmanager or the generic form, matched to a component "
               "or not."),
    "apply": ("apply", "apply", "Register the components declared in a file (all or nothing)."),
    "check": ("status", "check", "Check one component now and print the result (exit 1 when it fails)."),
    "component": ("components", "component", "Register and manage components."),
    "config": ("config", "config",
               "The configuration file shared by the service and the CLI (orchestrator.toml)."),
    "db": ("db", "db", "Database schema commands."),
    "degradation": ("degradation", "degradation", "Graceful-degradation levels that applications read "
                    "(normal, degraded, minimal, emergency)."),
    "demo": ("demo", "demo", "Start three loopback services, crash one, and watch the verified recovery "
             "(also on a live page)."),
    "incidents": ("incidents", "incidents", "Incident history and the human side of recovery."),
    "init": ("init", "init", "Print a file to start an installation from, e.g. `orchestrator init "
             "--print-unit > /etc/systemd/system/orchestrator.service` (deploy/README.md has the steps)."),
    "maintenance": ("windows", "maintenance", "Maintenance windows over a label selector: held as in "
                    "maintenance (no incidents, no actions)."),
    "plans": ("plans", "plans", "Recovery plan file commands."),
    "recover": ("recover", "recover", "Start a recovery of NAME now and follow it step by step."),
    "report": ("report", "report", "Uptime, checks, latency, incidents and every recovery step over a window."),
    "run": ("run", "run", "Run the daemon: check every component on schedule, record, open incidents, "
            "recover."),
    "silence": ("windows", "silence", "Silences over a label selector: notifications muted, automation "
                "carries on."),
    "status": ("status", "status", "One table of every component's state."),
    "statuspage": ("statuspage", "statuspage", "Public status pages (/status/NAME): display names and states only."),
    "strategies": ("plans", "strategies", "Recovery strategy plugins."),
    "tokens": ("users", "tokens", "API tokens of users (Authorization: Bearer ...), stored hashed and shown once."),
    "users": ("users", "users", "Users of the web page and API, each with a role (viewer, operator, admin)."),
    "web": ("web", "web", "Serve the status page, JSON API and /metrics from the database "
            "(for a second machine)."),
}


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        logs.install_filter(handler)
    cli.main(prog_name="orchestrator")
