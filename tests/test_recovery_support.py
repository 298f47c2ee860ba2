"""Helpers shared by the recovery tests: a scripted health view, stub executables, plans, components."""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.core.states import ComponentState
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, Incident, JournalEntry
from orchestrator.incidents.lifecycle import open_incident
from orchestrator.plans import PlanSet, parse_plans

#: Fast verification and backoff so tests take milliseconds, not minutes.
FAST = {"backoff": {"base": "10ms", "cap": "20ms"},
        "verify": {"interval": "20ms", "successes": 2, "deadline": "400ms"}}


class ScriptedHealth:
    """A HealthView whose answers the test sets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[int, ComponentState] = {}
        self._episodes: dict[int, int] = {}
        self.reliable = True
        self.reported: dict[int, list] = {}

    def set(self, component_id: int, state: ComponentState, episode: int | None = None) -> None:
        with self._lock:
            self._states[component_id] = state
            if episode is not None:
                self._episodes[component_id] = episode

    def state(self, component_id: int) -> ComponentState:
        with self._lock:
            return self._states.get(component_id, ComponentState.UNKNOWN)

    def states(self) -> dict[int, ComponentState]:
        with self._lock:
            return dict(self._states)

    def flap_episode(self, component_id: int) -> int:
        with self._lock:
            return self._episodes.get(component_id, 0)

    def view_reliable(self) -> bool:
        return self.reliable

    def counts(self) -> dict[ComponentState, int]:
        with self._lock:
            return dict(Counter(self._states.values()))

    def report_results(self, component_id: int, results) -> None:
        """Like the health plane: enough passes make a DOWN component UP."""
        with self._lock:
            self.reported.setdefault(component_id, []).extend(results)
            if results and all(r.ok for r in results):
                self._states[component_id] = ComponentState.UP


def plan_set(plans: dict[str, Any], **top: Any) -> PlanSet:
    """A validated PlanSet whose every step gets the FAST defaults."""
    return parse_plans({"version": 1, "defaults": FAST, "plans": plans, **top}, "test", env={})


def add_component(db: Database, name: str, url: str, *, plan: str | None = "p", plans: PlanSet | None = None,
                  **fields: Any) -> int:
    names = set(plans.plans) if plans is not None else {plan} if plan else None
    Registry(db, plan_names=names).add(ComponentSpec(name=name, url=url, plan=plan, interval=10, timeout=1,
                                                     **fields))
    with db.read() as session:
        return session.scalar(select(Component.id).where(Component.name == name))


def open_for(db: Database, component_id: int, name: str, reason: str = "down") -> int:
    from orchestrator.core.clock import SYSTEM_CLOCK

    with db.write() as session:
        event = open_incident(session, component_id=component_id, component_name=name, at=SYSTEM_CLOCK.now(),
                              reason=reason)
        return event.incident_id


def incident(db: Database, incident_id: int) -> Incident:
    with db.read() as session:
        return session.get(Incident, incident_id)


def journal_rows(db: Database, incident_id: int | None = None) -> list[JournalEntry]:
    with db.read() as session:
        stmt = select(JournalEntry).order_by(JournalEntry.incident_id, JournalEntry.step_index, JournalEntry.attempt)
        if incident_id is not None:
            stmt = stmt.where(JournalEntry.incident_id == incident_id)
        return list(session.scalars(stmt))


class Stubs:
    """Executables in a private bin dir that log their argv (one JSON line per call)."""

    def __init__(self, bindir: Path, log: Path) -> None:
        self.bindir, self.log = bindir, log

    def make(self, name: str, exit_code: int = 0, output: str = "", sleep_s: float = 0,
             touch: Path | None = None) -> str:
        """``touch``: a file the command creates before it exits (a RepairableServer's flag: the
        restart repairs the service)."""
        script = self.bindir / name
        repair = f"open({str(touch)!r}, 'a').close()\n" if touch is not None else ""
        script.write_text(
            f"#!{sys.executable}\nimport json, sys, time\n"
            f"open({str(self.log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
            f"sys.stdout.write({output!r}); sys.stdout.flush()\ntime.sleep({sleep_s})\n{repair}sys.exit({exit_code})\n")
        script.chmod(0o755)
        return str(script)

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


@pytest.fixture(name="stubs")
def stubs_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stubs:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))  # only stubs: a real systemctl must never run
    return Stubs(bindir, tmp_path / "argv.log")
