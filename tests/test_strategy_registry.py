"""The entry-point registry: built-ins load like plugins, and a freshly installed plugin works end to end."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.clock import FakeClock
from orchestrator.core.errors import NotFoundError
from orchestrator.plans import parse_plans
from orchestrator.strategy import (
    AttemptStatus,
    ComponentView,
    Strategy,
    StrategyContext,
    StrategyPluginError,
    VerifyMode,
    installed_strategies,
    load_strategy,
)
from orchestrator.testing import make_context

BUILT_INS = {"restart", "failover", "scale_up", "scale_down", "rollback", "notify", "isolate", "restore",
             "wait", "http"}

PLUGIN_SOURCE = '''
from orchestrator.strategy import Strategy, StrategyParams, StepResult, VerifyMode, render


class EchoParams(StrategyParams):
    words: list[str]


class EchoStrategy(Strategy):
    name = "{name}"
    Params = EchoParams
    verification = VerifyMode.NONE

    def execute(self, context):
        now = context.clock.now()
        said = render(self.params.words, context)
        return StepResult.succeeded(" ".join(said), started_at=now, finished_at=now, facts={{"said": said}})


class NotAStrategy:
    pass


class WritesTheUrl(EchoStrategy):
    persists = {{"said": "url"}}
'''


def install_plugin(root: Path, monkeypatch: pytest.MonkeyPatch, entries: dict[str, str]) -> str:
    """Write a package and a dist-info declaring ``entries`` (name → attribute) into ``root``, put it on
    sys.path, and return the package name. This is what ``pip install`` leaves behind."""
    package = f"acme_plugin_{uuid.uuid4().hex[:8]}"
    (root / package).mkdir()
    (root / package / "__init__.py").write_text(PLUGIN_SOURCE.format(name=next(iter(entries))))
    dist = root / f"{package}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {package}:{attr}\n" for name, attr in entries.items())
    (dist / "entry_points.txt").write_text(f"[orchestrator.strategies]\n{lines}")
    monkeypatch.syspath_prepend(str(root))
    return package


def context() -> StrategyContext:
    comp = ComponentView(name="web", url="http://127.0.0.1:9/", check=CheckSpec(url="http://127.0.0.1:9/"))
    return make_context(comp, incident_id=42, clock=FakeClock())


def test_every_built_in_is_installed_through_entry_points() -> None:
    installed = {s.name: s for s in installed_strategies()}
    assert set(installed) >= BUILT_INS
    assert installed["restart"].target == "orchestrator.builtin_strategies.restart:RestartStrategy"
    assert installed["restart"].distribution == "recovery-orchestrator"


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_built_in_loads_as_a_strategy_with_its_own_name(name: str) -> None:
    cls = load_strategy(name)
    assert issubclass(cls, Strategy)
    assert cls.name == name
    assert load_strategy(name) is cls  # cached


def test_unknown_name_lists_the_installed_ones() -> None:
    with pytest.raises(NotFoundError) as err:
        load_strategy("restrat")
    assert "'restrat'" in str(err.value)
    for name in BUILT_INS:
        assert name in str(err.value)


def test_third_party_plugin_is_found_validated_and_run_end_to_end(tmp_path: Path, monkeypatch) -> None:
    name = f"echo_{uuid.uuid4().hex[:6]}"
    package = install_plugin(tmp_path, monkeypatch, {name: "EchoStrategy"})
    assert (name, f"{package}:EchoStrategy", package) in installed_strategies()
    cls = load_strategy(name)
    assert cls.verification is VerifyMode.NONE

    plans = parse_plans({"version": 1, "plans": {"p": {"steps": [
        {"strategy": name, "params": {"words": ["hello", "{component.name}", "{incident.id}"]}}]}}}, "t.json", {})
    result = plans.get("p").steps[0].make_strategy().execute(context())
    assert result.outcome is AttemptStatus.SUCCEEDED
    assert result.facts["said"] == ["hello", "web", "42"]

    with pytest.raises(Exception) as err:  # the plugin's own Params reject unknown keys at load
        parse_plans({"version": 1, "plans": {"p": {"steps": [
            {"strategy": name, "params": {"words": [], "loud": True}}]}}}, "t.json", {})
    assert getattr(err.value, "field", None) == "plans.p.steps[0].params.loud"


def test_plugin_that_is_not_a_strategy_is_refused_by_name(tmp_path: Path, monkeypatch) -> None:
    name = f"bogus_{uuid.uuid4().hex[:6]}"
    package = install_plugin(tmp_path, monkeypatch, {name: "NotAStrategy"})
    with pytest.raises(StrategyPluginError) as err:
        load_strategy(name)
    assert name in str(err.value) and f"{package}:NotAStrategy" in str(err.value)
    assert "not a subclass" in str(err.value)


def test_plugin_that_fails_to_import_is_reported_not_raised_raw(tmp_path: Path, monkeypatch) -> None:
    name = f"broken_{uuid.uuid4().hex[:6]}"
    install_plugin(tmp_path, monkeypatch, {name: "DoesNotExist"})
    with pytest.raises(StrategyPluginError) as err:
        load_strategy(name)
    assert name in str(err.value) and "failed to import" in str(err.value)


def test_plugin_persisting_a_field_it_may_not_write_is_refused_at_load(tmp_path: Path, monkeypatch) -> None:
    name = f"writer_{uuid.uuid4().hex[:6]}"
    install_plugin(tmp_path, monkeypatch, {name: "WritesTheUrl"})
    with pytest.raises(StrategyPluginError) as err:
        load_strategy(name)
    assert name in str(err.value) and "'url'" in str(err.value) and "not a persistable field" in str(err.value)


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_built_ins_persist_only_persistable_fields(name: str) -> None:
    for field in load_strategy(name).persists.values():
        assert field in ("active_target", "replicas") or field.startswith("vars.")
