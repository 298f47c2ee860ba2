"""`orchestrator init`: print the files an installation starts from (plan file, config file, systemd unit).

They are printed, never written: the operator decides where they go (``> /etc/...``), so nothing on the
machine changes behind their back.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from orchestrator import data
from orchestrator.core.config_file import CONFIG_ENV, config_path
from orchestrator.core.errors import InputError

#: the example orchestrator.toml: every key, commented out at its default
CONFIG_TEMPLATE = """\
# /etc/orchestrator/orchestrator.toml: read by the service and by every `orchestrator` command.
# Precedence: command-line flag, then environment variable, then this file, then the default.
# `orchestrator config show` prints the effective values and where each came from.

# Database (default: SQLite in state_dir). PostgreSQL: "postgresql+psycopg://orchestrator@db/orchestrator"
#database_url = "sqlite:////var/lib/orchestrator/orchestrator.db"
plans = "/etc/orchestrator/recovery_strategies.json"
state_dir = "/var/lib/orchestrator"

# The status page, JSON API and /metrics of `orchestrator run` (off when unset)
#http = "127.0.0.1:8765"
# Writes on the page and API need a user (orchestrator users add NAME --role operator) or their token;
# this single shared token still works as an admin token but is deprecated
#api_token_file = "/etc/orchestrator/api-token"
#public_url = "https://orchestrator.example.com"

#retention_raw = "7d"
#retention_rollups = "400d"
# URLs that should always answer; when all fail, the view is unreliable
#sentinels = ["https://www.example.com/"]
"""


def _executable() -> Path | None:
    """The `orchestrator` script of the installation running now (a venv's or pipx's bin folder)."""
    candidate = Path(sys.executable).parent / "orchestrator"
    return candidate if candidate.is_file() else None


def unit_text(executable: Path | None = None, config: Path | None = None) -> str:
    """The shipped unit with ExecStart at ``executable`` and ORCHESTRATOR_CONFIG at ``config`` (when
    given: the file this command read, if not the default)."""
    text = data.read_text(data.SYSTEMD_UNIT)
    if executable is not None:
        text = re.sub(r"^ExecStart=(?:/usr/bin/env\s+)?\S+", lambda _m: f"ExecStart={executable}", text, count=1,
                      flags=re.M)
    if config is not None:
        text = re.sub(rf"^Environment={CONFIG_ENV}=.*$", lambda _m: f"Environment={CONFIG_ENV}={config.resolve()}",
                      text, count=1, flags=re.M)
    return text


@click.command()
@click.option("--print-unit", "what", flag_value="unit",
              help="The systemd unit, its ExecStart pointing at this installation.")
@click.option("--print-plans", "what", flag_value="plans", help="The example recovery_strategies.json.")
@click.option("--print-config", "what", flag_value="config", help="An example orchestrator.toml.")
def init(what: str | None) -> None:
    """Print a file to start an installation from, e.g. `orchestrator init --print-unit >
    /etc/systemd/system/orchestrator.service` (deploy/README.md has the steps)."""
    if what is None:
        raise InputError("give one of --print-unit, --print-plans, --print-config", field="init")
    if what == "config":
        click.echo(CONFIG_TEMPLATE, nl=False)
        return
    try:
        text = data.read_text(data.EXAMPLE_PLANS) if what == "plans" else unit_text(_executable(), config_path())
    except FileNotFoundError as exc:
        raise InputError(str(exc), field=f"--print-{what}") from None
    click.echo(text, nl=False)
