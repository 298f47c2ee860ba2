"""What a claimed run is given and what it hands back: the shared parts, the request, the end.

A run never raises for a decision; it returns a :class:`RunEnd`, and the coordinator writes what it
means for the claim (give the lease back, when to come back) in one fenced transaction.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from orchestrator.core.clock import Clock
from orchestrator.db.engine import Database
from orchestrator.plans import Limits, Plan
from orchestrator.recovery.claims import LEASE_S, Claim
from orchestrator.recovery.fleet_probe import FleetLook
from orchestrator.recovery.health_view import HealthView
from orchestrator.recovery.slots import ActionSlots
from orchestrator.resilience.deadlines import WallDeadlines


class RunOutcome(StrEnum):
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    BLOCKED = "blocked"  # a guard objected; the loop re-evaluates it when the cause clears
    WAITING = "waiting"  # come back at ``retry_at``: a backoff, a settle window, an approval
    GONE = "gone"  # resolved or moved by someone else meanwhile, or the lease was lost
    STOPPED = "stopped"  # shutdown
    FAILED = "failed"  # the run raised; picked up again after a backoff


@dataclass(frozen=True)
class RunEnd:
    """How a claimed run ended; ``retry_at`` is when the loop may pick the incident up again."""

    outcome: RunOutcome
    retry_at: datetime | None = None
    reason: str | None = None


GONE = RunEnd(RunOutcome.GONE)
STOPPED = RunEnd(RunOutcome.STOPPED)


@dataclass(frozen=True)
class RunRequest:
    """One claimed incident to work on with ``plan``."""

    incident_id: int
    plan_name: str
    plan: Plan
    limits: Limits
    claim: Claim
    manual: bool = False
    #: look before acting: the incident was found at start-up or taken over from another owner
    takeover: bool = False
    #: seconds an automatic run may wait before its first action (limits.settle, or the override)
    settle_s: float = 0.0
    #: claimed before it was due (found at start-up): after the fresh check, wait until then
    not_before: datetime | None = None


@dataclass
class Engine:
    """The parts every run shares (no per-run state)."""

    db: Database
    health: HealthView
    clock: Clock
    owner: str
    stop: threading.Event
    slots: ActionSlots
    rng: random.Random = field(default_factory=random.Random)
    error_handling_enabled: bool = True
    report: Callable[[str], None] = field(default=lambda _line: None)
    lease_s: float = LEASE_S
    #: the degradation level the orchestrator applies to itself now (orchestrator.degradation.actions)
    degradation: Callable[[], str] = field(default=lambda: "normal")
    #: the look around before settling, shared by the runs of a burst
    fleet: FleetLook = field(default_factory=FleetLook)
    #: journal rows this process claimed: one still ``running`` later had a live owner whose run was
    #: interrupted (the database went away), not a dead one
    claimed: set[int] = field(default_factory=set)
    #: the waits the recovery loop wrote into next_attempt_at, on the monotonic clock (the coordinator's)
    waits: WallDeadlines[int] = field(default_factory=WallDeadlines[int])

    def passed(self, incident_id: int, at: datetime) -> bool:
        """Has the incident's wait until wall time ``at`` ended? The one question a run asks of a wait
        it computes from stored wall times: on the monotonic clock when this process wrote that wait
        (a wall clock stepped back neither holds it an hour nor does one stepped forward end it early;
        invariant 7), on the wall clock otherwise."""
        return self.waits.passed(incident_id, at, now=self.clock.now(), mono=self.clock.monotonic())
