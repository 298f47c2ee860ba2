"""The `orchestrator` command. Each command group lives in its own module; all are thin."""

from __future__ import annotations

import logging
import sys

import click

from orchestrator import __version__
from orchestrator.cli.context import AppContext
from orchestrator.core import interrupts, logs
from orchestrator.core.config_file import load_config
from orchestrator.core.errors import OrchestratorError


class AppGroup(click.Group):
    """A group whose every known error becomes one line on stderr and its exit status, never a traceback.

    Bad input exits 2 (Click usage errors and InputError alike); an unreachable database exits 1.
    """

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
    ctx.obj = AppContext(db_flag=db_flag, plans_flag=plans_flag, config=load_config())
    ctx.call_on_close(ctx.obj.close)


def _register() -> None:
    from orchestrator.cli import (
        apply,
        components,
        config,
        db,
        degradation,
        demo,
        incidents,
        init,
        plans,
        recover,
        report,
        run,
        status,
        web,
    )

    cli.add_command(db.db)
    cli.add_command(components.component)
    cli.add_command(apply.apply)
    cli.add_command(plans.plans)
    cli.add_command(plans.strategies)
    cli.add_command(run.run)
    cli.add_command(status.status)
    cli.add_command(status.check)
    cli.add_command(incidents.incidents)
    cli.add_command(recover.recover)
    cli.add_command(demo.demo)
    cli.add_command(report.report)
    cli.add_command(web.web)
    cli.add_command(degradation.degradation)
    cli.add_command(config.config)
    cli.add_command(init.init)


_register()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        logs.install_filter(handler)
    cli.main(prog_name="orchestrator")
