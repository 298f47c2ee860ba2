"""What the recovery engine needs to know about live health, and a database-backed implementation.

The daemon's Monitor implements :class:`HealthView` from its in-memory trackers (the freshest truth).
:class:`DbHealthView` reads what the daemon last wrote, for the CLI ``recover`` command and tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Protocol

from sqlalchemy import func, select

from orchestrator.core.check_result import CheckResult
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.states import ComponentState
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, DaemonInstance

#: A daemon whose heartbeat is older than this no longer speaks for the view's reliability.
HEARTBEAT_STALE_S = 120.0


class HealthView(Protocol):
    """Read-only live health, safe to call from any thread."""

    def state(self, component_id: int) -> ComponentState:
        """The component's current tracker state (UNKNOWN for an unknown id)."""

    def states(self) -> dict[int, ComponentState]:
        """Every registered component's current state, by id."""

    def flap_episode(self, component_id: int) -> int:
        """Counter bumped each time the component starts flapping (0 if it never did)."""

    def view_reliable(self) -> bool:
        """False while the orchestrator's own sentinel checks fail: its view cannot be trusted."""

    def counts(self) -> Mapping[ComponentState, int]:
        """How many components are in each state; cheap (kept up to date as states change)."""

    def report_results(self, component_id: int, results: Sequence[CheckResult]) -> None:
        """Check results the recovery engine saw (a verification, a fresh look): the owner of the
        trackers counts them like its own checks (thresholds, DOWN→UP, the next check back at the
        normal interval). Returns at once; never raises."""


class DbHealthView:
    """A HealthView over ``components.state`` / ``flap_episode`` and the live daemons' heartbeats."""

    def __init__(self, db: Database, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.db = db
        self.clock = clock

    def state(self, component_id: int) -> ComponentState:
        with self.db.read() as session:
            value = session.scalar(select(Component.state).where(Component.id == component_id))
        return ComponentState(value) if value else ComponentState.UNKNOWN

    def states(self) -> dict[int, ComponentState]:
        with self.db.read() as session:
            rows = session.execute(select(Component.id, Component.state)).all()
        return {cid: ComponentState(state) for cid, state in rows}

    def flap_episode(self, component_id: int) -> int:
        with self.db.read() as session:
            value = session.scalar(select(Component.flap_episode).where(Component.id == component_id))
        return int(value or 0)

    def view_reliable(self) -> bool:
        """Unreliable only if a live daemon says so; with no daemon running there is nothing to doubt."""
        fresh_after = self.clock.now() - timedelta(seconds=HEARTBEAT_STALE_S)
        with self.db.read() as session:
            flags = session.scalars(
                select(DaemonInstance.view_reliable)
                .where(DaemonInstance.stopped_at.is_(None), DaemonInstance.heartbeat_at > fresh_after)
            ).all()
        return all(flags)

    def counts(self) -> dict[ComponentState, int]:
        with self.db.read() as session:
            rows = session.execute(select(Component.state, func.count()).group_by(Component.state)).all()
        return {ComponentState(state): n for state, n in rows}

    def report_results(self, component_id: int, results: Sequence[CheckResult]) -> None:
        """Nothing to tell: without a daemon no tracker runs here (the daemon's own checks will see it)."""
