"""The one vocabulary of states and outcomes, shared by the database, CLI, API and reports.

Enums are ``StrEnum``s and the database stores their ``.value``.
"""

from __future__ import annotations

from enum import StrEnum


class ComponentState(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"  # answering, but slow or error-prone (early warning; opens no incident by default)
    DOWN = "down"
    FLAPPING = "flapping"
    PAUSED = "paused"
    MAINTENANCE = "maintenance"


class IncidentStatus(StrEnum):
    OPEN = "open"
    RECOVERING = "recovering"
    AWAITING_APPROVAL = "awaiting_approval"
    BLOCKED = "blocked"  # a dependency is down, or a guard stopped automation
    ESCALATED = "escalated"  # automation has done all it safely can: a human is needed
    RESOLVED = "resolved"


#: Incident statuses that still need attention.
ACTIVE_INCIDENT_STATUSES = frozenset(s for s in IncidentStatus if s is not IncidentStatus.RESOLVED)


class Resolution(StrEnum):
    AUTO = "auto"  # a verified recovery step fixed it
    SELF = "self"  # it recovered with no action
    MANUAL = "manual"  # an operator closed it
    REMOVED = "removed"  # its component was removed from the registry


class UpdateState(StrEnum):
    """Where the people working on an incident tell its audience it stands (incident updates)."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class IncidentKind(StrEnum):
    COMPONENT = "component"
    MASS_OUTAGE = "mass_outage"  # the blast-radius guard tripped: many components down at once
    ALERT = "alert"  # a firing alert no registered component matches (docs/alerts.md)


class IncidentSource(StrEnum):
    """What opened an incident (``incidents.source``)."""

    CHECK = "check"  # the component's own health check (or a person's `recover`)
    ALERT = "alert"  # an alert posted to /api/v1/alerts (docs/alerts.md)


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class AttemptStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    FAILED_VERIFICATION = "failed_verification"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"  # a guard stopped it; the reason is recorded
    ABANDONED = "abandoned"  # its owner died mid-step; reconciled by verification


class Criticality(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class CheckKind(StrEnum):
    HTTP = "http"
    TCP = "tcp"
    COMMAND = "command"


class DegradationLevel(StrEnum):
    """How much optional work the system should shed, lowest first (compare with :func:`level_rank`)."""

    NORMAL = "normal"
    DEGRADED = "degraded"
    MINIMAL = "minimal"
    EMERGENCY = "emergency"


#: The levels in order; ``LEVEL_ORDER.index(level)`` is its rank.
LEVEL_ORDER: tuple[DegradationLevel, ...] = tuple(DegradationLevel)


def level_rank(level: DegradationLevel | str) -> int:
    """0 for NORMAL … 3 for EMERGENCY."""
    return LEVEL_ORDER.index(DegradationLevel(level))
