"""Early warning through the layers, on real databases: overrides from the CLI and apply files, the
state reason and incidents written by the recorder, the baseline seeded from rollups by the sync."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.core.clock import FakeClock
from orchestrator.core.states import ComponentState as S
from orchestrator.db.engine import Database
from orchestrator.db.migrate import ensure_schema
from orchestrator.db.models import CheckRollup, Component, Incident
from orchestrator.degradation.early_warning import EarlyWarningSettings
from orchestrator.health.judge import Install
from orchestrator.health.sync import RegistrySync
from orchestrator.history.recorder import Recorder, TransitionItem
from tests.conftest import snapshot

URL = "http://127.0.0.1:9/health"


def _overrides(db_url: str, name: str = "api") -> dict:
    database = Database(db_url)
    with database.read() as session:
        value = session.scalar(sa.select(Component.early_warning).where(Component.name == name))
    database.dispose()
    return value


# -- overrides: CLI and apply file -------------------------------------------------------------------


def test_cli_sets_merges_and_drops_overrides(run_cli, db_url) -> None:
    result = run_cli("component", "add", "api", "--url", URL, "--early-warning", "k=6",
                     "--early-warning", "enabled=false")
    assert result.exit_code == 0, result.output
    assert _overrides(db_url) == {"enabled": False, "k": 6.0}
    assert run_cli("component", "update", "api", "--early-warning", "latency_floor_ms=250",
                   "--early-warning", "enabled=").exit_code == 0
    assert _overrides(db_url) == {"k": 6.0, "latency_floor_ms": 250.0}
    shown = json.loads(run_cli("component", "show", "api", "--json").stdout)
    assert shown["early_warning"] == {"k": 6.0, "latency_floor_ms": 250.0}
    assert run_cli("component", "update", "api", "--early-warning", "k=6").stdout.strip() == "api unchanged"


@pytest.mark.parametrize(("command", "flags", "message"), [
    pytest.param("add", ["k=1"], "--early-warning k: must be > 1", id="add-k-too-small"),
    pytest.param("add", ["sensitivity=3"], "--early-warning sensitivity: unknown setting", id="add-unknown"),
    pytest.param("add", ["enabled=perhaps"], "--early-warning enabled: must be true or false", id="add-bool"),
    pytest.param("add", ["min_samples=50"], "--early-warning min_samples: must not exceed window (20)",
                 id="add-cross-field"),
    pytest.param("update", ["k=0.5"], "--early-warning k: must be > 1", id="update-k-too-small"),
    pytest.param("update", ["window=8"], "--early-warning min_samples: must not exceed window (8)",
                 id="update-window-below-min-samples"),
])
def test_bad_overrides_exit_2_naming_the_field_and_change_nothing(run_cli, db_url, command, flags,
                                                                  message) -> None:
    assert run_cli("component", "add", "existing", "--url", URL, "--early-warning", "k=5").exit_code == 0
    database = Database(db_url)
    ensure_schema(database)
    before = snapshot(database)
    name = ["existing"] if command == "update" else ["api", "--url", URL]
    result = run_cli("component", command, *name, *[arg for flag in flags for arg in ("--early-warning", flag)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert snapshot(database) == before


def test_apply_file_overrides_and_errors(run_cli, db_url, tmp_path) -> None:
    path = tmp_path / "components.yaml"
    path.write_text("components:\n  - name: api\n    url: http://127.0.0.1:9/health\n"
                    "    early_warning: {k: 6, enabled: false}\n")
    assert run_cli("apply", "-f", str(path)).exit_code == 0
    assert _overrides(db_url) == {"enabled": False, "k": 6.0}
    assert "unchanged" in run_cli("apply", "-f", str(path)).stdout
    database = Database(db_url)
    before = snapshot(database)
    path.write_text("components:\n  - name: api\n    url: http://127.0.0.1:9/health\n"
                    "    early_warning: {k: 6, error_rate: 2}\n")
    result = run_cli("apply", "-f", str(path))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "components[0].early_warning.error_rate: must be <= 1" in lines[0], lines
    assert snapshot(database) == before


# -- the recorder: state_reason and incidents -----------------------------------------------------------


def _component(db: Database, name: str = "api") -> int:
    Registry(db).add(ComponentSpec(name=name, url=URL))
    with db.read() as session:
        return Registry(db).get_row(session, name).id


def test_the_reason_is_kept_beside_the_state_and_only_down_opens_an_incident(db: Database, run_cli) -> None:
    cid = _component(db)
    clock = FakeClock()
    rec = Recorder(db, clock=clock)

    def move(source: S, target: S, reason: str) -> tuple:
        clock.advance(30)
        rec.add_transition(TransitionItem(cid, "api", source, target, clock.now(), reason, 0))
        rec.flush_now()
        with db.read() as session:
            row = session.get(Component, cid)
            incidents = session.scalars(sa.select(Incident.status).where(Incident.component_id == cid)).all()
            return row.state, row.state_reason, incidents

    why = "p95 480 ms vs baseline 40 ms (threshold 160 ms)"
    assert move(S.UNKNOWN, S.UP, "2 consecutive successes") == ("up", None, [])
    assert move(S.UP, S.DEGRADED, why) == ("degraded", why, [])
    status = run_cli("status")
    assert "degraded" in status.stdout and "p95 480 ms vs baseline 40 ms" in status.stdout
    assert json.loads(run_cli("component", "show", "api", "--json").stdout)["state_reason"] == why
    assert why in run_cli("component", "show", "api").stdout
    assert move(S.DEGRADED, S.UP, "p95 40 ms ... clear for 5 checks") == ("up", None, [])
    assert move(S.UP, S.DEGRADED, why) == ("degraded", why, [])
    assert move(S.DEGRADED, S.DOWN, "3 consecutive failures: timeout") == (
        "down", "3 consecutive failures: timeout", ["open"])


# -- the sync: overrides and the baseline seed reach the judge ------------------------------------------


class Collect:
    """Stands in for the judge's queue."""

    def __init__(self) -> None:
        self.sent: list = []

    def send(self, message) -> None:
        self.sent.append(message)


def _rollups(db: Database, cid: int, end, p50s: list[float], failures: list[int] | None = None) -> None:
    with db.write() as session:
        for i, p50 in enumerate(p50s):
            minute = (end - timedelta(minutes=len(p50s) - i)).replace(second=0, microsecond=0)
            session.add(CheckRollup(component_id=cid, minute=minute, checks=6, failures=(failures or [0] * 99)[i],
                                    latency_p50_ms=p50, latency_p95_ms=p50 * 2, latency_max_ms=p50 * 3))


def _installs(db: Database, clock: FakeClock) -> dict[str, Install]:
    judge = Collect()
    RegistrySync(db, judge, clock=clock).sync()  # type: ignore[arg-type]
    return {m.name: m for m in judge.sent if isinstance(m, Install)}


def test_sync_seeds_the_baseline_from_rollups_without_failed_or_unhealthy_minutes(db: Database) -> None:
    clock = FakeClock()
    clock.advance(3 * 3600)
    api, web, old = _component(db, "api"), _component(db, "web"), _component(db, "old")
    _rollups(db, api, clock.now(), [30, 31, 500, 29, 30], failures=[0, 0, 3, 0, 0])
    _rollups(db, web, clock.now(), [20, 21, 22, 300, 320])
    _rollups(db, old, clock.now() - timedelta(hours=2), [25, 25, 25])  # older than the hour kept
    with db.write() as session:  # web is degraded since its slow minutes began (the minute it began in goes too)
        row = session.get(Component, web)
        row.state, row.state_since = "degraded", clock.now() - timedelta(minutes=1, seconds=30)
    installs = _installs(db, clock)
    assert installs["api"].seed.minute_p50s == (30, 31, 29, 30)
    assert installs["web"].seed.minute_p50s == (20, 21, 22)
    assert installs["old"].seed.minute_p50s == ()
    assert installs["api"].config.timeout_s == 2.0 and installs["api"].config.early_warning == EarlyWarningSettings()


def test_sync_hands_overrides_to_the_tracker_config_and_ignores_broken_ones(db: Database, caplog) -> None:
    Registry(db).add(ComponentSpec(name="api", url=URL, early_warning={"k": 6, "enabled": False}))
    cid = _component(db, "web")
    with db.write() as session:  # written by hand, not through the definition
        session.get(Component, cid).early_warning = {"k": 0}
    with caplog.at_level(logging.WARNING):
        installs = _installs(db, FakeClock())
    assert installs["api"].config.early_warning == EarlyWarningSettings(k=6, enabled=False)
    assert installs["web"].config.early_warning == EarlyWarningSettings()
    assert "early_warning overrides ignored component=web: k: must be > 1" in caplog.text
