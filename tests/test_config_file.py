"""orchestrator.toml: one configuration the service and every CLI command read. Precedence: flag, then
environment variable, then the file, then the default; a bad file exits 2 naming the key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.core.redaction import redact
from orchestrator.db.engine import Database
from tests.daemon_helpers import poll, spawn
from tests.servers import LoopbackHTTPServer


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write orchestrator.toml (relative paths are relative to its folder) and point ORCHESTRATOR_CONFIG at it."""
    path = tmp_path / "etc" / "orchestrator.toml"
    path.parent.mkdir()
    monkeypatch.setenv("ORCHESTRATOR_CONFIG", str(path))
    monkeypatch.delenv("ORCHESTRATOR_HOME")

    def write(text: str) -> Path:
        path.write_text(text)
        return path

    return write


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _show() -> dict:
    result = _invoke("config", "show", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_every_key_from_the_file_with_its_source(config, tmp_path: Path) -> None:
    path = config('database_url = "postgresql+psycopg://ops:hunter2@db.internal/orchestrator"\n'
                  'plans = "plans.json"\nstate_dir = "/var/lib/orchestrator"\nhttp = "127.0.0.1:9000"\n'
                  'api_token_file = "/etc/orchestrator/api-token"\nretention_raw = "3d"\n'
                  'retention_rollups = 86400\nsentinels = ["https://example.com/"]\n'
                  'public_url = "https://ops.example.com/orchestrator"\n')
    shown = _show()
    source = str(path)
    assert {k: v["source"] for k, v in shown.items() if k != "config_file"} == dict.fromkeys(
        ["database_url", "plans", "state_dir", "http", "api_token_file", "retention_raw", "retention_rollups",
         "sentinels", "public_url"], source)
    assert shown["config_file"] == {"value": source, "source": "ORCHESTRATOR_CONFIG"}
    assert shown["database_url"]["value"] == "postgresql+psycopg://ops:***@db.internal/orchestrator"
    assert shown["plans"]["value"] == str(tmp_path / "etc" / "plans.json")
    assert shown["retention_raw"]["value"] == 3 * 86400 and shown["retention_rollups"]["value"] == 86400
    text = _invoke("config", "show").output
    assert "hunter2" not in text and "ops:***@db.internal" in text and "3d" in text


def test_flags_then_environment_then_file_then_default(config, tmp_path: Path, monkeypatch) -> None:
    config(f'database_url = "sqlite:///{tmp_path}/file.db"\nstate_dir = "{tmp_path}/state"\nhttp = "127.0.0.1:9000"\n')
    shown = _show()
    assert (shown["database_url"]["value"], shown["state_dir"]["source"]) == (redact(f"sqlite:///{tmp_path}/file.db"),
                                                                             str(tmp_path / "etc" / "orchestrator.toml"))
    assert shown["retention_raw"] == {"value": 7 * 86400, "source": "default"}
    monkeypatch.setenv("ORCHESTRATOR_DB_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "envhome"))
    monkeypatch.setenv("ORCHESTRATOR_HTTP", "127.0.0.1:9001")
    shown = _show()
    assert shown["database_url"] == {"value": redact(f"sqlite:///{tmp_path}/env.db"), "source": "ORCHESTRATOR_DB_URL"}
    assert shown["state_dir"] == {"value": str(tmp_path / "envhome"), "source": "ORCHESTRATOR_HOME"}
    assert shown["http"] == {"value": "127.0.0.1:9001", "source": "ORCHESTRATOR_HTTP"}
    flagged = json.loads(_invoke("--db", f"sqlite:///{tmp_path}/flag.db", "config", "show", "--json").output)
    assert flagged["database_url"] == {"value": redact(f"sqlite:///{tmp_path}/flag.db"), "source": "--db"}


def test_commands_use_the_files_database(config, tmp_path: Path) -> None:
    config(f'state_dir = "{tmp_path}/state"\npublic_url = "https://ops.example.com/orchestrator"\n')
    added = _invoke("component", "add", "api", "--url", "http://127.0.0.1:9/")
    assert added.exit_code == 0, added.output
    assert (tmp_path / "state" / "orchestrator.db").is_file()
    listed = json.loads(_invoke("component", "list", "--json").output)
    assert [c["name"] for c in listed] == ["api"]
    assert "page: https://ops.example.com/orchestrator" in _invoke("status").output


@pytest.mark.parametrize(("text", "key"), [
    ('database_uri = "sqlite:///x.db"\n', "database_uri"),
    ("retention_raw = true\n", "retention_raw"),
    ('retention_raw = "soon"\n', "retention_raw"),
    ("http = 8765\n", "http"),
    ('sentinels = "https://example.com/"\n', "sentinels"),
    ('sentinels = ["ftp://example.com/"]\n', "sentinels"),
    ('public_url = "example.com"\n', "public_url"),
    ('plans = ""\n', "plans"),
    ("[http]\nlisten = 1\n", "http"),
    ("state_dir = \n", "ORCHESTRATOR_CONFIG"),  # not TOML at all
])
def test_a_bad_file_exits_2_naming_the_key_and_changes_nothing(config, tmp_path: Path, text: str, key: str) -> None:
    config(text)
    for args in (["status"], ["config", "show"], ["component", "add", "api", "--url", "http://127.0.0.1:9/"]):
        result = _invoke(*args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {key}"), (args, result.output)
    assert not (tmp_path / "home").exists() and not list(tmp_path.rglob("*.db"))


def test_a_named_file_that_does_not_exist_exits_2(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ORCHESTRATOR_CONFIG", str(tmp_path / "missing.toml"))
    result = _invoke("status")
    assert result.exit_code == 2 and result.output.startswith("error: ORCHESTRATOR_CONFIG: no configuration file")


def test_the_daemon_reads_the_file_too(config, tmp_path: Path, db_url: str, request) -> None:
    """`run` with nothing but the config file: its database, retention and sentinels, its http address."""
    from tests.conftest import _copy_template

    _copy_template(request, db_url)
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    with LoopbackHTTPServer("ok") as server:
        config(f'database_url = "{db_url}"\nsentinels = ["{server.url}"]\nhttp = "127.0.0.1:0"\n'
               f'api_token_file = "{token}"\nretention_raw = "1d"\n')
        assert _invoke("component", "add", "api", "--url", server.url, "--interval", "200ms").exit_code == 0
        proc = spawn(["run", "--for", "60s"], tmp_path / "unused-home",
                     env={"ORCHESTRATOR_CONFIG": str(tmp_path / "etc" / "orchestrator.toml")})
        try:
            db = Database(db_url)

            def up() -> bool:
                shown = json.loads(_invoke("status", "--json").output)
                return bool(shown["instances"]) and shown["components"][0]["state"] == "up"

            poll(up, 60, 0.2)
            db.dispose()
        finally:
            proc.terminate()
            _out, err = proc.communicate(timeout=60)
    assert re.search(r"web: serving http://127\.0\.0\.1:\d+/", err), err  # the file's `http`


def test_the_files_token_file_is_read_unless_the_variable_overrides_it(config, tmp_path: Path, monkeypatch) -> None:
    config(f'state_dir = "{tmp_path}/state"\napi_token_file = "missing-token"\n')
    result = _invoke("run", "--for", "1s")
    assert result.exit_code == 2 and result.output.startswith("error: --api-token-file: cannot read"), result.output
    assert str(tmp_path / "etc" / "missing-token") in result.output  # relative to the file's folder
    monkeypatch.setenv("ORCHESTRATOR_API_TOKEN", "from-the-environment")
    shown = _show()["api_token_file"]
    assert shown == {"value": None, "source": "ORCHESTRATOR_API_TOKEN"}
    assert _invoke("run", "--for", "1s", "--log-level", "error").exit_code == 0
