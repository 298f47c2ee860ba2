"""The whole schema, as SQLAlchemy 2 typed models.

Every state column stores the ``.value`` of an enum from :mod:`orchestrator.core.states`. Times are aware
UTC (:class:`UTCDateTime`). The schema changes only through Alembic migrations; ``alembic check`` in the
test suite keeps models and migrations in step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from orchestrator.core.defaults import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_INTERVAL_S,
    DEFAULT_SUCCESS_THRESHOLD,
    default_timeout_s,
)
from orchestrator.core.states import DegradationLevel
from orchestrator.db.types import UTCDateTime

# Named constraints so migrations can drop/alter them on every backend (SQLite batch mode needs names).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT ids on PostgreSQL, INTEGER (the rowid alias, so autoincrement works) on SQLite.
BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Component(Base):
    """A registered component: what to check, how to recover it, and its live state."""

    __tablename__ = "components"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    # -- the check: kind + typed definition (orchestrator.core.check_spec.CheckSpec as JSON)
    check_kind: Mapped[str] = mapped_column(String(16), default="http")
    url: Mapped[str | None] = mapped_column(Text)
    check_spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    interval_s: Mapped[float] = mapped_column(Float, default=DEFAULT_INTERVAL_S)
    timeout_s: Mapped[float] = mapped_column(Float, default=lambda ctx: default_timeout_s(
        ctx.get_current_parameters().get("interval_s") or DEFAULT_INTERVAL_S))
    failure_threshold: Mapped[int] = mapped_column(Integer, default=DEFAULT_FAILURE_THRESHOLD)
    success_threshold: Mapped[int] = mapped_column(Integer, default=DEFAULT_SUCCESS_THRESHOLD)
    retry_interval_s: Mapped[float | None] = mapped_column(Float)
    # longest wait between probes while DOWN; NULL means default_max_probe_interval_s(interval_s)
    max_probe_interval_s: Mapped[float | None] = mapped_column(Float)
    # -- recovery
    plan: Mapped[str | None] = mapped_column(String(63))
    criticality: Mapped[str] = mapped_column(String(16), default="normal")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    vars: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # vars the operator marked secret (`--secret-var`): usable as {vars.KEY}, never shown
    secret_vars: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    # early-warning overrides for this component (orchestrator.degradation.early_warning), {} = defaults
    early_warning: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    backup_url: Mapped[str | None] = mapped_column(Text)
    replicas: Mapped[int | None] = mapped_column(Integer)
    min_replicas: Mapped[int | None] = mapped_column(Integer)
    max_replicas: Mapped[int | None] = mapped_column(Integer)
    # -- what recovery learned (facts a strategy persists: orchestrator.recovery.records.apply_facts is the
    # one writer; a changed declaration of the same field clears it). It overrides the declared value
    # while set (orchestrator.components.targets), so re-applying the definition never undoes it.
    active_target: Mapped[str] = mapped_column(String(16), default="primary")  # failback resets it
    learned_replicas: Mapped[int | None] = mapped_column(Integer)
    # a None value hides the declared var of that name (a strategy removed it)
    learned_vars: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    # -- operator holds
    paused_until: Mapped[datetime | None]
    paused_reason: Mapped[str | None] = mapped_column(Text)
    maintenance_until: Mapped[datetime | None]
    # -- live state (written by the daemon)
    state: Mapped[str] = mapped_column(String(16), default="unknown")
    state_since: Mapped[datetime | None]
    # why it is in its state, one line ("p95 480 ms vs baseline 40 ms"); NULL when nothing to say
    state_reason: Mapped[str | None] = mapped_column(Text)
    last_check_at: Mapped[datetime | None]
    # when the daemon's dispatcher checks it next (mirrored from its heap with each result batch)
    next_check_at: Mapped[datetime | None]
    last_latency_ms: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)
    # when the TLS certificate last seen by an https check expires (kept while later checks see none)
    tls_expires_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_successes: Mapped[int] = mapped_column(Integer, default=0)
    checks_total: Mapped[int] = mapped_column(BigInteger, default=0)
    failures_total: Mapped[int] = mapped_column(BigInteger, default=0)
    flap_episode: Mapped[int] = mapped_column(Integer, default=0)
    # recovery breaker state (orchestrator.resilience.breaker, as a dict)
    breaker: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # -- change detection: bumped on every definition change, so a running daemon reloads it
    generation: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # -- HA lease (PostgreSQL, several instances): expiry judged on the database clock
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_expires_at: Mapped[datetime | None]

    def hold_at(self, now: datetime) -> str | None:
        """The operator hold in force at ``now``: ``"paused"``, ``"maintenance"`` or None (pause wins)."""
        if self.paused_until is not None and self.paused_until > now:
            return "paused"
        if self.maintenance_until is not None and self.maintenance_until > now:
            return "maintenance"
        return None

    dependencies: Mapped[list[ComponentDependency]] = relationship(
        foreign_keys="ComponentDependency.component_id", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (
        CheckConstraint("interval_s > 0", name="interval_positive"),
        CheckConstraint("timeout_s > 0 AND timeout_s < interval_s", name="timeout_below_interval"),
        CheckConstraint("failure_threshold >= 1 AND success_threshold >= 1", name="thresholds_positive"),
        # `status` and the scheduler's state queries filter by state
        Index("ix_components_state", "state"),
        # instances claim expired leases: WHERE lease_expires_at < now()
        Index("ix_components_lease_expires_at", "lease_expires_at"),
    )


class ComponentDependency(Base):
    """``component`` depends on ``depends_on`` (acyclic; enforced by the service layer)."""

    __tablename__ = "component_dependencies"

    component_id: Mapped[int] = mapped_column(ForeignKey("components.id", ondelete="CASCADE"), primary_key=True)
    depends_on_id: Mapped[int] = mapped_column(ForeignKey("components.id", ondelete="RESTRICT"), primary_key=True)

    __table_args__ = (
        CheckConstraint("component_id <> depends_on_id", name="not_self"),
        # "who depends on X?" when X recovers and its dependents are re-evaluated
        Index("ix_component_dependencies_depends_on_id", "depends_on_id"),
    )


class CheckResultRow(Base):
    """One raw check result. Written in batches with Core inserts; pruned after the raw retention."""

    __tablename__ = "check_results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    component_id: Mapped[int] = mapped_column(ForeignKey("components.id", ondelete="CASCADE"))
    checked_at: Mapped[datetime]
    ok: Mapped[bool] = mapped_column(Boolean)
    # recorded as unreliable when the orchestrator's own sentinels were failing ("is it me?")
    reliable: Mapped[bool] = mapped_column(Boolean, default=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    lateness_ms: Mapped[float | None] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # the server certificate's notAfter, for https checks that completed a TLS handshake
    tls_expires_at: Mapped[datetime | None]

    __table_args__ = (
        # history of one component, newest first; also serves pruning per component
        Index("ix_check_results_component_id_checked_at", "component_id", "checked_at"),
        # retention pruning: DELETE ... WHERE checked_at < cutoff
        Index("ix_check_results_checked_at", "checked_at"),
    )


class StateTransition(Base):
    """Every component state change, kept forever."""

    __tablename__ = "state_transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    component_id: Mapped[int] = mapped_column(ForeignKey("components.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # a component's timeline (reports, uptime)
        Index("ix_state_transitions_component_id_at", "component_id", "at"),
    )


class CheckRollup(Base):
    """Per-minute aggregate of one component's checks; kept far longer than raw results."""

    __tablename__ = "check_rollups"

    component_id: Mapped[int] = mapped_column(ForeignKey("components.id", ondelete="CASCADE"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    checks: Mapped[int] = mapped_column(Integer)
    failures: Mapped[int] = mapped_column(Integer)
    latency_p50_ms: Mapped[float | None] = mapped_column(Float)
    latency_p95_ms: Mapped[float | None] = mapped_column(Float)
    latency_max_ms: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        # retention pruning by time across all components
        Index("ix_check_rollups_minute", "minute"),
    )


class Incident(Base):
    """Something broke. Opened on UP→DOWN (or by the blast-radius guard), closed only when healthy."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # NULL for a mass-outage incident, which is about the fleet, not one component
    component_id: Mapped[int | None] = mapped_column(ForeignKey("components.id", ondelete="SET NULL"))
    # kept so history still names a component after it was removed
    component_name: Mapped[str | None] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16), default="component")
    status: Mapped[str] = mapped_column(String(24), default="open")
    resolution: Mapped[str | None] = mapped_column(String(16))
    # the first failure reason; later ones are kept in the incident's events and details["reasons"]
    reason: Mapped[str | None] = mapped_column(Text)
    # why it is in its current status: the guard that blocked it, why it escalated, how it resolved
    status_reason: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[str | None] = mapped_column(String(63))
    # the component whose failure is the real cause (a dependency), when blocked
    blocked_by: Mapped[str | None] = mapped_column(String(63))
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]
    acked_by: Mapped[str | None] = mapped_column(String(128))
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(128))
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    # the step that resolved it (resolution=auto)
    resolved_by_step: Mapped[int | None] = mapped_column(Integer)
    # the flap episode during which it was opened (at most one action per episode)
    flap_episode: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # -- the run lease: who works on it now; expiry judged on the database clock
    run_owner: Mapped[str | None] = mapped_column(String(64))
    run_epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    run_expires_at: Mapped[datetime | None]
    # not to be worked on before this (a retry's backoff, a settle window, an approval's timeout)
    next_attempt_at: Mapped[datetime | None]
    # why the last run ended without a decision (an exception, a lost database)
    last_error: Mapped[str | None] = mapped_column(Text)
    # what a non-terminal incident waits for (a backoff, a settle window, a crash-loop wait, a guard, an
    # approval), written by the recovery loop whenever a run ends without closing it; NULL while acting
    waiting_for: Mapped[str | None] = mapped_column(Text)
    # when the loop looks at it again at the latest (NULL: at once, or when its cause clears)
    waiting_until: Mapped[datetime | None]
    # what opened it: "check" (the health plane, or a person) or "alert" (docs/alerts.md)
    source: Mapped[str] = mapped_column(String(16), default="check", server_default="check")
    # -- escalation (orchestrator.incidents.escalation): the next reminder or tier is due at this wall time
    next_reminder_at: Mapped[datetime | None]
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # 0: the first targets; n: tier n of the escalation policy was reached
    escalation_tier: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        # the escalation loop: WHERE next_reminder_at <= now
        Index("ix_incidents_next_reminder_at", "next_reminder_at"),
        # one component's incidents newest first; "the last incident" for reopen
        Index("ix_incidents_component_id_opened_at", "component_id", "opened_at"),
        # the active queue: WHERE status <> 'resolved'
        Index("ix_incidents_status", "status"),
        # reports over a time window
        Index("ix_incidents_opened_at", "opened_at"),
    )


class Alert(Base):
    """An alert posted to the API (Alertmanager's webhook or the generic form): one row per firing
    episode of one alert identity (its fingerprint), updated when it resolves. Kept when no component
    matches (``component_id`` NULL): an alert is never dropped silently (docs/alerts.md)."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
    # "alertmanager" or "generic"
    origin: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    # the alertname label
    name: Mapped[str | None] = mapped_column(String(255))
    component_name: Mapped[str | None] = mapped_column(String(63))
    component_id: Mapped[int | None] = mapped_column(ForeignKey("components.id", ondelete="SET NULL"))
    incident_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("incidents.id", ondelete="SET NULL"))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    generator_url: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    received_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        # the firing row of an alert identity: WHERE fingerprint = ? AND status = 'firing'
        Index("ix_alerts_fingerprint_status", "fingerprint", "status"),
        # an incident's alerts
        Index("ix_alerts_incident_id", "incident_id"),
        # the newest alerts first (the API's list)
        Index("ix_alerts_received_at", "received_at"),
    )


class IncidentNote(Base):
    """A free-text note an operator added to an incident (shown on its timeline)."""

    __tablename__ = "incident_notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    author: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        # an incident's notes in order
        Index("ix_incident_notes_incident_id", "incident_id"),
    )


class JournalEntry(Base):
    """One attempt of one recovery step for one incident. The unique key makes each attempt happen at
    most once: the row is claimed and committed before the side effect runs."""

    __tablename__ = "recovery_journal"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    component_id: Mapped[int | None] = mapped_column(ForeignKey("components.id", ondelete="SET NULL"))
    step_index: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(24), default="pending")
    # false when observe-only (ERROR_HANDLING_ENABLED=false), dry-run, or a guard skipped it
    executed: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str | None] = mapped_column(String(64))
    owner_epoch: Mapped[int | None] = mapped_column(BigInteger)
    claimed_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    description: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    verification: Mapped[dict[str, Any]] = mapped_column(default=dict)
    skip_reason: Mapped[str | None] = mapped_column(Text)
    # the command the attempt spawned, so a later owner can kill it if its owner died: the host (and
    # boot) it runs on, its pid, and its start time in clock ticks since boot (a reused pid differs)
    proc_host: Mapped[str | None] = mapped_column(String(255))
    proc_pid: Mapped[int | None] = mapped_column(Integer)
    proc_start_ticks: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("incident_id", "step_index", "attempt", name="uq_recovery_journal_attempt"),
        # reconciliation on start: WHERE status = 'running'
        Index("ix_recovery_journal_status", "status"),
        # budgets: a component's actions within a window
        Index("ix_recovery_journal_component_id_claimed_at", "component_id", "claimed_at"),
    )


class IncidentEventRow(Base):
    """Something that happened to an incident, written in the transaction that made it happen.

    Every status change writes one (see orchestrator.incidents.status), and so do a few events that
    change no status (``step_failed``). The notifier reads the rows not yet notified: a crash between
    the change and the notification loses nothing.
    """

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(String(16))
    # set when the notifier took the event (sent, or not routed anywhere)
    notified_at: Mapped[datetime | None]

    __table_args__ = (
        # an incident's timeline
        Index("ix_incident_events_incident_id_id", "incident_id", "id"),
        # the notifier's queue: WHERE notified_at IS NULL ORDER BY id
        Index("ix_incident_events_notified_at", "notified_at"),
    )


class Notification(Base):
    """A notification sent (or failed to send). Destinations are stored redacted."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id", ondelete="SET NULL"))
    event: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        # an incident's notifications
        Index("ix_notifications_incident_id", "incident_id"),
        # report windows
        Index("ix_notifications_created_at", "created_at"),
    )


class AuditEntry(Base):
    """Who changed what, when, from where: one row per mutation by an operator."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    os_user: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(255))
    command: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(128))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        # "what happened to X?"
        Index("ix_audit_log_target_at", "target", "at"),
    )


class DaemonInstance(Base):
    """A running (or past) daemon. Heartbeats let other instances and `status` see who is alive."""

    __tablename__ = "daemon_instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    # counters that must never be silent: results dropped while the database was unreachable
    dropped_results: Mapped[int] = mapped_column(BigInteger, default=0)
    # what the recorder did not write, by orchestrator.history.drops.NAMES (zeros left out)
    drops: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    # first failed write of the current spell of failed writes (NULL while writes succeed)
    writes_failing_since: Mapped[datetime | None]
    view_reliable: Mapped[bool] = mapped_column(Boolean, default=True)
    # components this instance cannot recover because their plan is unknown (or there is no plan
    # file), as one line for `status`; NULL when every plan is found
    plan_warning: Mapped[str | None] = mapped_column(Text)


#: the levels a row may hold: core.states.DegradationLevel, the one list of them
_LEVEL_CHECK = f"level IN ({', '.join(repr(level.value) for level in DegradationLevel)})"


class PublishedLevel(Base):
    """The published level of one scope ("global" or a label selector). The evaluator is its one writer."""

    __tablename__ = "degradation_levels"

    scope: Mapped[str] = mapped_column(String(255), primary_key=True)
    level: Mapped[str] = mapped_column(String(16))
    # bumped on every change of level or reasons: the long-poll's `after` and the ETag
    version: Mapped[int] = mapped_column(BigInteger, default=1)
    since: Mapped[datetime]
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    # the feature map at ``level`` for this scope, as applications read it
    features: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # seconds applications may cache the answer
    ttl_s: Mapped[float] = mapped_column(Float, default=10.0)
    # the level the policies alone give (an override may publish another)
    computed: Mapped[str] = mapped_column(String(16))
    evaluated_at: Mapped[datetime]
    # while ``level`` is above ``computed``: when it steps down one if the rules keep asking for less
    held_until: Mapped[datetime | None]
    # global scope: the orchestrator's own overload and what it does to its checks (NULL: not overloaded)
    self_protection: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (CheckConstraint(_LEVEL_CHECK, name="level_known"),
                      CheckConstraint(_LEVEL_CHECK.replace("level IN", "computed IN"), name="computed_known"))


class DegradationOverride(Base):
    """An operator's level for a scope until ``expires_at`` (or until cleared)."""

    __tablename__ = "degradation_overrides"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(255))
    level: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]
    cleared_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        CheckConstraint(_LEVEL_CHECK, name="level_known"),
        # the override in force: WHERE scope = ? AND cleared_at IS NULL AND expires_at > now
        Index("ix_degradation_overrides_scope_expires_at", "scope", "expires_at"),
    )


class DegradationEvent(Base):
    """One change of a scope's published level: from, to, why, and who when an operator did it."""

    __tablename__ = "degradation_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    scope: Mapped[str] = mapped_column(String(255))
    from_level: Mapped[str | None] = mapped_column(String(16))
    to_level: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    # NULL when the policies changed it; the operator for an override set or cleared
    actor: Mapped[str | None] = mapped_column(String(128))
    # set when the notifier took the event
    notified_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_degradation_events_scope_at", "scope", "at"),
        Index("ix_degradation_events_notified_at", "notified_at"),
    )


class User(Base):
    """A person who logs in to the web page or holds API tokens, with one role (accounts.roles.Role)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    #: argon2id, PHC string (parameters and salt inside); never the password
    password_hash: Mapped[str] = mapped_column(String(255))
    #: raised by a password change: every login signed with an older one is refused
    session_epoch: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]

    __table_args__ = (CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="role_known"),)


class ApiToken(Base):
    """A user's API token: only its SHA-256 is kept (the token itself is shown once, at creation)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    #: hex SHA-256 of the whole token
    token_hash: Mapped[str] = mapped_column(String(64))
    #: read (GET operations only) or write (everything the user's role allows)
    scope: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime]
    #: NULL: never expires
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("scope IN ('read', 'write')", name="scope_known"),
        # `tokens list --user NAME` and a user's removal
        Index("ix_api_tokens_user_id", "user_id"),
    )


class MaintenanceWindow(Base):
    """A maintenance window or a notification silence over the components a label selector picks.

    ``kind`` is ``maintenance`` (components are held as in maintenance: no incidents, no actions) or
    ``silence`` (notifications are muted, automation carries on). One-off: ``starts_at``/``ends_at``;
    recurring (maintenance only): ``cron`` in ``tz`` opens it for ``duration_s``. Written only through
    :mod:`orchestrator.components.windows`.
    """

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    # canonical label selector text (key=value[,key=value]), as degradation scopes spell it
    selector: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    cron: Mapped[str | None] = mapped_column(String(128))
    duration_s: Mapped[float | None] = mapped_column(Float)
    tz: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        CheckConstraint("kind IN ('maintenance', 'silence')", name="kind_known"),
        CheckConstraint("(cron IS NULL) = (starts_at IS NOT NULL)", name="one_off_or_recurring"),
    )


class StatusPage(Base):
    """A public status page: a title and named groups of components, shown at ``/status/NAME`` with display
    names only (never a URL, label, error or host)."""

    __tablename__ = "status_pages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    # [{"name": "API", "components": ["api", "auth"]}, ...] in display order
    groups: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class IncidentUpdate(Base):
    """A human-written update of an incident (investigating, identified, monitoring, resolved); the public
    ones are shown on status pages and in their Atom feeds."""

    __tablename__ = "incident_updates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    author: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        # an incident's updates in order
        Index("ix_incident_updates_incident_id", "incident_id"),
        # a status page's and feed's newest public updates
        Index("ix_incident_updates_public_at", "public", "at"),
    )


class PushMonitor(Base):
    """The ping token of a push (heartbeat) monitor: the secret in its ping URL ``/ping/<token>``.

    Kept out of the component's definition (which the API, audit and ``apply`` show); shown only to an
    operator by ``component show`` and ``component ping-url``. Created with the component (or when it
    becomes a push monitor), deleted with it."""

    __tablename__ = "push_monitors"

    component_id: Mapped[int] = mapped_column(ForeignKey("components.id", ondelete="CASCADE"), primary_key=True)
    # a random UUID (122 random bits): unguessable, and unique by its index
    token: Mapped[str] = mapped_column(String(36), unique=True)
    created_at: Mapped[datetime]


class PushPing(Base):
    """One ping received for a push monitor, with the wall time it arrived (a record, never a wait)."""

    __tablename__ = "push_pings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    component_id: Mapped[int] = mapped_column(ForeignKey("components.id", ondelete="CASCADE"))
    received_at: Mapped[datetime]
    # success | start | fail (an exit status other than 0 is a fail with exit_status set)
    kind: Mapped[str] = mapped_column(String(8))
    exit_status: Mapped[int | None] = mapped_column(Integer)
    # seconds from the run's start ping to this success or fail (NULL without a start)
    duration_s: Mapped[float | None] = mapped_column(Float)
    # the request body, capped and redacted: the run's log excerpt
    body: Mapped[str | None] = mapped_column(Text)
    # True when the daemon judged it in its own process (its web server); False for a ping written by
    # `orchestrator web`, which the daemon picks up from this table
    judged: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        CheckConstraint("kind IN ('success', 'start', 'fail')", name="kind_known"),
        # a monitor's last ping, last success and its history, newest first
        Index("ix_push_pings_component_id_id", "component_id", "id"),
        # retention pruning: DELETE ... WHERE received_at < cutoff
        Index("ix_push_pings_received_at", "received_at"),
    )
