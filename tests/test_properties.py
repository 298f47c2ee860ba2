"""Generated input never produces a traceback: the CLI always answers 0 or 2."""

from __future__ import annotations

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
