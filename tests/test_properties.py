"""Generated input never produces a traceback: the CLI always answers 0 or 2."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cli import cli
from orchestrator.core.durations import format_duration, parse_duration

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

names = st.one_of(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,62}", fullmatch=True), st.text(max_size=70))
durations = st.one_of(
    st.from_regex(r"[0-9]{1,6}(\.[0-9]{1,3})?(ms|s|m|h|d)?", fullmatch=True),
    st.text(max_size=12),
)
values = st.one_of(st.text(max_size=40), st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(),
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
entry = st.dictionaries(
    st.sampled_from(["name", "url", "interval", "timeout", "failure_threshold", "success_threshold", "depends_on",
                     "labels", "vars", "plan", "criticality", "expect_status", "check", "bogus"]),
    st.one_of(values, names, durations, st.just("http://127.0.0.1:9/")),
    max_size=8,
)
apply_docs = st.one_of(st.fixed_dictionaries({"components": st.lists(entry, max_size=4)}), values)


def _invoke(db: str, *args: str):
    return CliRunner().invoke(cli, ["--db", db, *args], catch_exceptions=False)


@SETTINGS
@given(name=names, interval=durations, timeout=durations)
def test_component_add_never_tracebacks(tmp_path: Path, name: str, interval: str, timeout: str) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    result = _invoke(db, "component", "add", name, "--url", "http://127.0.0.1:9/", "--interval", interval,
                     "--timeout", timeout)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert len(result.stderr.strip().splitlines()) == 1
    _invoke(db, "component", "remove", name)


@SETTINGS
@given(doc=apply_docs, as_json=st.booleans())
def test_apply_never_tracebacks(tmp_path: Path, doc, as_json: bool) -> None:
    path = tmp_path / ("c.json" if as_json else "c.yaml")
    path.write_text(json.dumps(doc, default=str) if as_json else yaml.safe_dump(doc))
    result = _invoke(f"sqlite:///{tmp_path / 'p.db'}", "apply", "-f", str(path), "--dry-run")
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output


@given(st.floats(min_value=0.001, max_value=86400 * 300, allow_nan=False))
def test_duration_format_round_trips(seconds: float) -> None:
    seconds = round(seconds, 3)
    if seconds <= 0:
        return
    assert abs(parse_duration(format_duration(seconds)) - seconds) <= max(0.0005, seconds * 1e-9)


# --- plan files --------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
step_values = st.one_of(json_values, durations, st.integers(min_value=-5, max_value=200),
                        st.just("3"), st.just(True), st.just(10**30))
steps = st.fixed_dictionaries(
    {"strategy": st.one_of(st.sampled_from(["restart", "notify", "wait", "http", "scale_up", "failover", "nope"]),
                           st.text(max_size=10))},
    optional={
        "params": st.one_of(json_values, st.fixed_dictionaries({}, optional={
            "command": st.one_of(st.lists(st.text(max_size=12), max_size=3), json_values),
            "urls": st.lists(st.sampled_from(["mailto://ops@example.com", "json://127.0.0.1:9/x", "bogus://"]),
                             max_size=2),
            "seconds": step_values, "by": step_values, "preset": st.text(max_size=8), "unit": st.text(max_size=8)})),
        "attempts": step_values, "timeout": step_values, "name": st.text(max_size=8),
        "verify": st.one_of(json_values, st.fixed_dictionaries({}, optional={"successes": step_values,
                                                                             "interval": step_values})),
        "approval": st.one_of(json_values, st.fixed_dictionaries({}, optional={"required": step_values})),
        "backoff": st.one_of(json_values, st.fixed_dictionaries({}, optional={"base": step_values, "cap": step_values})),
    },
)
plan_docs = st.one_of(
    st.fixed_dictionaries(
        {"version": st.sampled_from([1, 1, 1, 2, "1", True, None]),
         "plans": st.dictionaries(names, st.fixed_dictionaries({"steps": st.lists(steps, max_size=3)}), max_size=2)},
        optional={"limits": json_values, "notifications": json_values, "defaults": json_values, "bogus": json_values},
    ),
    json_values,
)


@SETTINGS
@given(doc=plan_docs, nest=st.integers(min_value=0, max_value=3000), raw=st.booleans())
def test_plans_validate_never_tracebacks(tmp_path: Path, doc, nest: int, raw: bool) -> None:
    path = tmp_path / "plans.json"
    text = json.dumps(doc)
    if raw:  # bury the document, or cut it, to reach the decoder's own limits
        text = "[" * nest + text + "]" * nest if nest % 2 else text[: nest % max(len(text), 1)]
    path.write_text(text)
    result = CliRunner().invoke(cli, ["plans", "validate", str(path)], catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    if result.exit_code == 2:
        assert len(result.stderr.strip().splitlines()) == 1


# --- more command lines --------------------------------------------------------------------------------

flag_values = st.one_of(st.text(max_size=30), durations, names, st.integers().map(str),
                        st.just("k=${env:}"), st.just("http://u:${env:X}@127.0.0.1:9/"), st.just("9" * 40))
update_flags = st.lists(st.tuples(st.sampled_from([
    "--url", "--interval", "--timeout", "--failure-threshold", "--success-threshold", "--retry-interval", "--plan",
    "--depends-on", "--criticality", "--expect-status", "--label", "--var", "--secret-var", "--backup-url",
    "--replicas", "--min-replicas", "--max-replicas"]), flag_values), min_size=1, max_size=4)


@SETTINGS
@given(flags=update_flags)
def test_component_update_never_tracebacks_and_bad_input_changes_nothing(tmp_path: Path, flags) -> None:
    from orchestrator.db.engine import Database
    from tests.conftest import snapshot

    db = f"sqlite:///{tmp_path / 'u.db'}"
    _invoke(db, "component", "add", "api", "--url", "http://127.0.0.1:9/")
    database = Database(db)
    before = snapshot(database)
    result = _invoke(db, "component", "update", "api", *[part for pair in flags for part in pair])
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    if result.exit_code == 2:
        assert len(result.stderr.strip().splitlines()) == 1
        assert snapshot(database) == before
    _invoke(db, "component", "remove", "api")


@SETTINGS
@given(prefix=st.sampled_from(["", "sqlite:///", "sqlite:////nonexistent/", "mysql://", "postgresql+psycopg2://",
                               "sqlite+aiosqlite:///", "postgres://", "://", "sqlite://"]),
       rest=st.text(max_size=20))
def test_any_db_url_is_one_line(tmp_path: Path, monkeypatch, prefix: str, rest: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--db", prefix + rest, "component", "list"], catch_exceptions=False)
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    if result.exit_code:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@SETTINGS
@given(args=st.lists(st.one_of(st.text(max_size=25), st.integers().map(str), st.just("--json")), max_size=3),
       command=st.sampled_from([["incidents", "show"], ["incidents", "ack"], ["incidents", "list", "--since"],
                                ["incidents", "list", "--status"], ["check"], ["component", "pause"],
                                ["component", "show"], ["report", "--since"], ["recover"]]))
def test_other_commands_never_traceback(tmp_path: Path, args: list[str], command: list[str]) -> None:
    with contextlib.chdir(tmp_path):  # a `report` that succeeds writes its file here, not in the checkout
        result = _invoke(f"sqlite:///{tmp_path / 'o.db'}", *command, *args)
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
