"""What the hot commands import: `orchestrator --help` and `orchestrator status` run as real processes and
report their ``sys.modules``. A command pays for every module it imports on every run, so the heavy ones
(the migration machinery, the web server, notifications, validation models) load only where used.
bench/cli.py measures the time; this pins the behaviour behind it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from orchestrator.cli import COMMANDS, cli
from orchestrator.core.config_file import KEYS
from orchestrator.db import migrate

#: loaded by no command that does not use them
NEVER_FOR_HELP_OR_STATUS = ("alembic", "pydantic", "pydantic_core", "flask", "werkzeug", "waitress", "jinja2",
                            "apprise", "requests", "urllib3", "apscheduler", "orchestrator.web",
                            "orchestrator.recovery", "orchestrator.daemon", "orchestrator.plans",
                            "orchestrator.components.definition", "orchestrator.health.checkers")
#: `--help` opens no database and prints no table
NEVER_FOR_HELP = ("sqlalchemy", "rich", "orchestrator.db", *(f"orchestrator.cli.{m}" for m, _, _ in
                                                          COMMANDS.values()))

_PROBE = """
import json, sys
sys.argv = ["orchestrator", *sys.argv[2:]]
out = __import__("os").environ["MODULES_OUT"]
try:
    from orchestrator.__main__ import main
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(out, "w") as fh:
    json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
"""


def _modules(tmp_path: Path, *args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules loaded by ``orchestrator ARGS`` as its own process, and the process."""
    out = tmp_path / "modules.json"
    env = {**os.environ, "MODULES_OUT": str(out)}
    proc = subprocess.run([sys.executable, "-c", _PROBE, "-", *args], capture_output=True, text=True, env=env,
                          timeout=120)
    report = json.loads(out.read_text())
    assert report["code"] in (0, None), proc.stderr
    return set(report["modules"]), proc


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in modules or any(m.startswith(f"{n}.") for m in modules))


def test_help_imports_no_command_and_no_database_code(tmp_path: Path) -> None:
    modules, proc = _modules(tmp_path, "--help")
    assert "status" in proc.stdout and "Commands:" in proc.stdout
    assert _loaded(modules, NEVER_FOR_HELP_OR_STATUS + NEVER_FOR_HELP) == []


@pytest.mark.parametrize("command", [("status",), ("component", "list")], ids=" ".join)
def test_status_reads_without_migration_web_or_validation_code(tmp_path: Path, run_cli, db_url: str,
                                                               command: tuple[str, ...]) -> None:
    assert run_cli("component", "add", "api", "--url", "http://127.0.0.1:9/health").exit_code == 0
    modules, proc = _modules(tmp_path, "--db", db_url, *command)
    assert "api" in proc.stdout and "unknown" in proc.stdout
    assert "sqlalchemy" in modules  # the probe saw the database being read
    assert _loaded(modules, NEVER_FOR_HELP_OR_STATUS) == []


def test_help_lists_every_command_as_its_own_help_would() -> None:
    """The table behind `--help` matches the commands it stands for, at every width Click may cut at."""
    for name, (module, attr, _summary) in COMMANDS.items():
        real = getattr(__import__(f"orchestrator.cli.{module}", fromlist=[attr]), attr)
        assert isinstance(real, click.Command) and real.name == name
        assert not real.hidden and not real.deprecated
        listed = cli.get_command(click.Context(cli), name)
        assert listed is real
        stub = click.Command(name, help=COMMANDS[name][2])
        for limit in (20, 45, 60, 80, 94, 200, 1000):
            assert stub.get_short_help_str(limit) == real.get_short_help_str(limit), (name, limit)


def test_unknown_command_still_exits_2_with_one_line_and_the_close_matches(tmp_path: Path) -> None:
    """Commands not yet loaded are still offered as "did you mean" (Click suggests from loaded ones)."""
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "stauts"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "ORCHESTRATOR_HOME": str(tmp_path)})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "stauts" in proc.stderr
    if hasattr(click.exceptions, "NoSuchCommand"):  # Click >= 8.4 suggests; older versions never did
        assert "Did you mean one of: 'status', 'statuspage', 'strategies'?" in proc.stderr


def test_head_revision_constant_is_alembics_head() -> None:
    """Opening a database compares its revision with HEAD_REVISION, not with Alembic's scripts: a new
    migration must move the constant, or a database it left behind would be taken as current."""
    assert migrate.head_revision() == migrate.HEAD_REVISION


def test_config_keys_are_the_models_fields() -> None:
    from orchestrator.core.config_model import ConfigFile

    assert tuple(ConfigFile.model_fields) == KEYS


@pytest.mark.parametrize("stored", ["0001", None])
def test_a_database_not_at_head_still_goes_through_alembic(db, stored: str | None) -> None:
    """The fast path accepts only the head: an older revision is refused, an empty database migrated."""
    from orchestrator.core.errors import SchemaOutdatedError

    if stored is None:
        migrate.downgrade(db, "base")
        migrate.ensure_schema(db)
        with db.engine.connect() as conn:
            assert migrate.stored_revision(conn) == migrate.HEAD_REVISION
        return
    migrate.downgrade(db, stored)
    with pytest.raises(SchemaOutdatedError, match="orchestrator db upgrade"):
        migrate.ensure_schema(db)


def test_a_stale_head_constant_never_passes_an_outdated_database(db, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration added without moving HEAD_REVISION: a database at the old head is still refused."""
    from orchestrator.core.errors import SchemaOutdatedError

    migrate.downgrade(db, "0007")  # 0004 revises 0007: as if 0004 were new and the constant left at 0007
    monkeypatch.setattr(migrate, "HEAD_REVISION", "0007")
    assert not migrate.head_constant_is_newest()
    with pytest.raises(SchemaOutdatedError, match="orchestrator db upgrade"):
        migrate.ensure_schema(db)
