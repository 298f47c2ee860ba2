"""Plan-file hardening: a size cap checked before reading, duplicate keys, bounded nesting and integer
size, no coercion of counts and switches from strings; each bad file is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.core.config_text import MAX_DEPTH
from orchestrator.core.errors import PlanError
from orchestrator.plans import load_plans
from orchestrator.plans.load import MAX_PLAN_FILE_BYTES
from tests.test_plans import with_change

STEP = '{"strategy": "restart", "params": {"command": ["true"]}}'
VALID = {"version": 1, "plans": {"web": {"steps": [json.loads(STEP)]}}}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plans.json"
    path.write_text(text)
    return path


def _refused(path: Path) -> PlanError:
    with pytest.raises(PlanError) as info:
        load_plans(path, env={})
    return info.value


def _validate(path: Path):
    return CliRunner().invoke(cli, ["plans", "validate", str(path)])


def _with(path: list, value: object) -> str:
    return json.dumps(with_change(path, value, VALID))


# (id, file text, JSON path named, words in the message)
BAD_FILES = [
    ("two-plans-same-name", f'{{"version": 1, "plans": {{"web": {{"steps": [{STEP}]}}, "web": {{"steps": []}}}}}}',
     "plans.web", "defined twice"),
    ("duplicate-top-level-key", f'{{"version": 1, "version": 1, "plans": {{"web": {{"steps": [{STEP}]}}}}}}',
     "version", "defined twice"),
    ("duplicate-param", '{"version": 1, "plans": {"web": {"steps": [{"strategy": "restart", '
     '"params": {"command": ["a"], "command": ["b"]}}]}}}', "plans.web.steps[0].params.command", "defined twice"),
    ("huge-integer", _with(["plans", "web", "steps", 0, "attempts"], 0).replace('"attempts": 0', '"attempts": '
                                                                                  + "9" * 5000),
     "plans.web.steps[0].attempts", "number too large"),
    ("nan", _with(["plans", "web", "steps", 0, "attempts"], 0).replace('"attempts": 0', '"attempts": NaN'),
     "plans.web.steps[0].attempts", "finite"),
    ("float-overflow", _with(["limits"], {}).replace('"limits": {}', '"limits": {"max_unhealthy_fraction": 1e999}'),
     "limits.max_unhealthy_fraction", "finite"),
    ("deep-params", _with(["plans", "web", "steps", 0, "params", "extra"], 0).replace(
        '"extra": 0', '"extra": ' + "[" * 100 + "]" * 100), "plans.web.steps[0].params.extra", "nested deeper"),
    ("very-deep", '{"version": 1, "plans": ' + "[" * 200_000 + "]" * 200_000 + "}", "$", "nested deeper"),
    ("attempts-string", _with(["plans", "web", "steps", 0, "attempts"], "3"), "plans.web.steps[0].attempts",
     "expected a whole number, got a string"),
    ("attempts-true", _with(["plans", "web", "steps", 0, "attempts"], True), "plans.web.steps[0].attempts",
     "expected a whole number, got true/false"),
    ("required-string", _with(["plans", "web", "steps", 0, "approval"], {"required": "yes"}),
     "plans.web.steps[0].approval.required", "expected true or false"),
    ("successes-string", _with(["plans", "web", "steps", 0, "verify"], {"successes": "2"}),
     "plans.web.steps[0].verify.successes", "whole number"),
    ("limit-string", _with(["limits"], {"max_concurrent_recoveries": "4"}), "limits.max_concurrent_recoveries",
     "whole number"),
    ("version-true", _with(["version"], True), "version", "1"),
    ("plan-name-unusable", json.dumps({"version": 1, "plans": {"Web Server": VALID["plans"]["web"]}}),
     "plans", "invalid plan name 'Web Server'"),
    ("scale-by-string", json.dumps({"version": 1, "plans": {"web": {"steps": [
        {"strategy": "scale_up", "params": {"command": ["true"], "by": "2"}}]}}}),
     "plans.web.steps[0].params.by", "whole number"),
]


@pytest.mark.parametrize(("text", "path", "words"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_file_names_the_path_and_exits_2(tmp_path: Path, text: str, path: str, words: str) -> None:
    plan_file = _write(tmp_path, text)
    error = _refused(plan_file)
    assert error.field == path, str(error)
    assert words in str(error)
    result = _validate(plan_file)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert words in line and "internal error" not in line


def test_durations_and_numbers_are_still_accepted(tmp_path: Path) -> None:
    text = _with(["plans", "web", "steps", 0], {**VALID["plans"]["web"]["steps"][0], "timeout": "10s",
                                                 "verify": {"interval": 0.5, "deadline": 30}})
    data = json.loads(text)
    data["limits"] = {"max_unhealthy_fraction": 1, "settle": "1s"}
    plans = load_plans(_write(tmp_path, json.dumps(data)), env={})
    step = plans.get("web").steps[0]
    assert (step.timeout_s, step.verify.interval_s, step.verify.deadline_s) == (10.0, 0.5, 30.0)
    assert plans.limits.max_unhealthy_fraction == 1.0


def test_environment_overrides_still_apply(tmp_path: Path) -> None:
    plans = load_plans(_write(tmp_path, json.dumps(VALID)), env={"RETRY_MAX_ATTEMPTS": "5"})
    assert plans.get("web").steps[0].attempts == 5


def test_nesting_at_the_limit_is_fine(tmp_path: Path) -> None:
    depth_used = 6  # {} plans {} web {} steps [] step {} params {} extra
    nested = "[" * (MAX_DEPTH - depth_used) + "]" * (MAX_DEPTH - depth_used)
    text = _with(["plans", "web", "steps", 0, "params", "extra"], 0).replace('"extra": 0', f'"extra": {nested}')
    error = _refused(_write(tmp_path, text))
    assert "unknown field 'extra'" in str(error), "only the strategy's own check refuses it"


def test_file_over_the_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "plans.json"
    path.write_text(json.dumps(VALID) + " " * (MAX_PLAN_FILE_BYTES - len(json.dumps(VALID))))
    assert load_plans(path, env={}).get("web")  # exactly at the cap: fine
    with path.open("a") as file:
        file.write(" ")
    assert "1024 KiB" in str(_refused(path))
    huge = tmp_path / "huge.json"
    with huge.open("wb") as file:  # 50 MB of zeros, sparse: reading it would not even be JSON
        file.truncate(50 * 1024 * 1024)
    error = _refused(huge)
    assert f"{50 * 1024 * 1024} bytes" in str(error) and "1024 KiB" in str(error)
    result = _validate(huge)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_not_utf8_and_directory_are_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "plans.json"
    binary.write_bytes(b'{"version": 1, "plans": {"\xff": {}}}')
    assert "not UTF-8" in str(_refused(binary))
    assert "cannot read plan file" in str(_refused(tmp_path))


def test_daemon_refuses_a_bad_file_with_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path, _with(["plans", "web", "steps", 0, "attempts"], "3"))
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path / 'x.db'}", "--plans", str(path), "run",
                                      "--for", "1s"])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert "plans.web.steps[0].attempts" in line
