"""`apply -f`: idempotent, all-or-nothing, dry run, prune, and clear errors with the path of the field."""

from __future__ import annotations

import json

import pytest

from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from tests.conftest import snapshot

GOOD = """
components:
  - name: db
    url: http://127.0.0.1:5432/
    criticality: critical
  - name: api
    url: http://127.0.0.1:8080/health
    interval: 5s
    timeout: 1s
    depends_on: [db]
    labels: {team: core}
    vars: {unit: api.service}
    expect_status: [200, "300-302"]
    max_probe_interval: 20s
  - name: cache
    check:
      kind: tcp
      host: 127.0.0.1
      port: 6379
"""


def _write(tmp_path, text, name="components.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_apply_creates_then_is_idempotent(run_cli, tmp_path) -> None:
    path = _write(tmp_path, GOOD)
    first = run_cli("apply", "-f", path)
    assert first.exit_code == 0, first.output
    assert "3 created" in first.stdout
    second = run_cli("apply", "-f", path, "--json")
    assert {c["action"] for c in json.loads(second.stdout)["changes"]} == {"unchanged"}
    listed = {c["name"]: c for c in json.loads(run_cli("component", "list", "--json").stdout)}
    assert listed["api"]["depends_on"] == ["db"] and listed["api"]["timeout_s"] == 1.0
    assert listed["api"]["max_probe_interval_s"] == 20.0 and listed["db"]["max_probe_interval_s"] is None
    assert listed["cache"]["kind"] == "tcp"


def test_dry_run_prints_diff_and_changes_nothing(run_cli, tmp_path, db_url) -> None:
    run_cli("apply", "-f", _write(tmp_path, GOOD))
    database = Database(db_url)
    before = snapshot(database)
    changed = GOOD.replace("interval: 5s", "interval: 7s")
    result = run_cli("apply", "-f", _write(tmp_path, changed, "v2.yaml"), "--dry-run")
    assert result.exit_code == 0
    assert "~ api (interval_s)" in result.stdout and "would change" in result.stdout
    assert snapshot(database) == before


def test_prune_removes_undeclared(run_cli, tmp_path) -> None:
    run_cli("apply", "-f", _write(tmp_path, GOOD))
    run_cli("component", "add", "extra", "--url", "http://127.0.0.1:9/")
    only_db = "components:\n  - name: db\n    url: http://127.0.0.1:5432/\n    criticality: critical\n"
    result = run_cli("apply", "-f", _write(tmp_path, only_db, "small.yaml"), "--prune")
    assert result.exit_code == 0, result.output
    names = [c["name"] for c in json.loads(run_cli("component", "list", "--json").stdout)]
    assert names == ["db"]


BAD_FILES = [
    pytest.param("components:\n  - name: a\n    url: http://x/\n  - name: b\n    url: ftp://x/\n",
                 "components[1].url", id="one-bad-url-applies-nothing"),
    pytest.param("components:\n  - name: a\n    url: http://x/\n    intervl: 5s\n", "components[0].intervl",
                 id="unknown-key"),
    pytest.param("components:\n  - name: a\n    url: http://x/\n  - name: a\n    url: http://y/\n", "declared twice",
                 id="duplicate-name"),
    pytest.param("components:\n  - name: a\n    url: http://x/\n    depends_on: [b]\n  - name: b\n"
                 "    url: http://x/\n    depends_on: [a]\n", "cycle", id="dependency-cycle"),
    pytest.param("components:\n  - name: a\n    url: http://x/\n    depends_on: [zz]\n", "zz", id="unknown-dependency"),
    pytest.param("components: [\n", "invalid YAML", id="malformed-yaml"),
    pytest.param("components:\n  - name: a\n    name: b\n    url: http://x/\n", "duplicate key", id="duplicate-key"),
    pytest.param("- just a list\n", "components", id="not-a-mapping"),
    pytest.param("components:\n  - name: a\n    url: http://x/\n    interval: 1s\n    timeout: 3s\n",
                 "components[0].timeout", id="timeout-over-interval"),
    pytest.param("components:\n  - name: a\n    url: http://x/\n    plan: nope\n", "plan", id="unknown-plan"),
    pytest.param("components:\n  - name: a\n    url: http://x/\n    interval: 10s\n    max_probe_interval: 5s\n",
                 "components[0].max_probe_interval", id="probe-cap-below-interval"),
    pytest.param("components:\n  - name: a\n    check: {kind: command, command: []}\n", "components[0]",
                 id="empty-command-check"),
    pytest.param("components: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper", id="deep-yaml"),
    pytest.param("components:\n  - name: a\n    url: http://x/\n    replicas: " + "9" * 5000 + "\n",
                 "number too large", id="huge-integer-yaml"),
    pytest.param("components:\n  - name: a\n    url: http://x/\n    replicas: 99999999\n", "components[0].replicas",
                 id="replicas-over-limit"),
    pytest.param("components:\n  - name: a\n    url: http://x/\n    failure_threshold: .nan\n", "finite",
                 id="nan-yaml"),
    pytest.param("components:\n  - name: a\n    url: http://x/\n    secret_vars: {k: \"${env:}\"}\n", "bad reference",
                 id="bad-reference"),
    pytest.param("components:\n  - name: a\n    url: http://x/\n    vars: {k: 1}\n    secret_vars: {k: 2}\n",
                 "also a plain var", id="var-and-secret-var"),
]

BAD_JSON_FILES = [
    pytest.param('{"components": [{"name": "a", "name": "b", "url": "http://x/"}]}', "components[0].name",
                 id="duplicate-key"),
    pytest.param('{"components": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper", id="very-deep"),
    pytest.param('{"components": [{"name": "a", "url": "http://x/", "replicas": ' + "9" * 5000 + "}]}",
                 "components[0].replicas", id="huge-integer"),
    pytest.param('{"components": [{"name": "a", "url": "http://x/", "interval": NaN}]}', "finite", id="nan"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_JSON_FILES)
def test_bad_json_file_exits_2_and_applies_nothing(run_cli, tmp_path, db_url, text, expected) -> None:
    test_bad_file_exits_2_and_applies_nothing(run_cli, tmp_path, db_url, text, expected, name="c.json")


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_file_exits_2_and_applies_nothing(run_cli, tmp_path, db_url, text, expected,
                                              name: str = "components.yaml") -> None:
    assert run_cli("component", "add", "keep", "--url", "http://127.0.0.1:1/").exit_code == 0
    database = Database(db_url)
    ensure_schema(database)
    before = snapshot(database)
    result = run_cli("apply", "-f", _write(tmp_path, text, name))
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert expected in result.stderr
    assert snapshot(database) == before


def test_json_apply_file_and_missing_file(run_cli, tmp_path) -> None:
    path = _write(tmp_path, json.dumps({"components": [{"name": "a", "url": "http://x/"}]}), "c.json")
    assert run_cli("apply", "-f", path).exit_code == 0
    missing = run_cli("apply", "-f", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "nope.yaml" in missing.stderr
