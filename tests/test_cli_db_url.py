"""`--db` mistakes exit 2 with one line naming what was typed and the right form; nothing is created."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli

BAD_URLS = [
    pytest.param("postgresql+psycopg2://app@127.0.0.1/app", ["postgresql+psycopg2", "postgresql+psycopg://",
                                                              "psycopg 3"], id="psycopg2"),
    pytest.param("postgres://app@127.0.0.1/app", ["postgres", "postgresql+psycopg://"], id="short-postgres"),
    pytest.param("mysql://app@127.0.0.1/app", ["mysql", "sqlite:///PATH"], id="unknown-dialect"),
    pytest.param("sqlite+aiosqlite:///x.db", ["sqlite+aiosqlite", "sqlite://"], id="unknown-driver"),
    pytest.param("not a url", ["not a database URL", "not a url"], id="not-a-url"),
    pytest.param("sqlite:///nonexistent/dir/x.db", ["nonexistent/dir", "does not exist"], id="missing-dir"),
]


@pytest.mark.parametrize(("url", "words"), BAD_URLS)
@pytest.mark.parametrize("command", [["component", "list"], ["status"], ["db", "upgrade"], ["run", "--for", "1s"]],
                         ids=lambda c: c[0])
def test_bad_db_url_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str,
                                       words: list[str], command: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--db", url, *command])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: --db: ")
    for word in words:
        assert word in line
    assert "internal error" not in result.output
    assert list(tmp_path.iterdir()) == [], "a bad URL creates nothing"


def test_password_in_a_bad_url_is_not_echoed(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", "mysql://app:hunter2secret@db.example/app", "status"])
    assert result.exit_code == 2
    assert "hunter2secret" not in result.output


def test_url_from_the_environment_is_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DB_URL", "postgresql+psycopg2://app@127.0.0.1/app")
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ORCHESTRATOR_DB_URL: ")


def test_default_state_dir_is_still_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "new" / "home"
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(home))
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 0, result.output
    assert (home / "orchestrator.db").exists()


def test_existing_directory_is_fine(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path / 'x.db'}", "status"])
    assert result.exit_code == 0, result.output
