"""The response shapes of ``/api/v1``: the items of :mod:`orchestrator.components.views` and
:mod:`orchestrator.incidents.operator`, one pydantic model each.

Every key is required and no other is allowed (``extra="forbid"``), so the schemathesis run and the
tests that validate each answer against the generated document fail when a view's shape changes
without its model. Routes return the views' dicts as they are; these models only describe them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.core.states import (
    AttemptStatus,
    ComponentState,
    Criticality,
    DegradationLevel,
    IncidentKind,
    IncidentSource,
    IncidentStatus,
    Resolution,
    UpdateState,
)


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentWindow(Shape):
    id: int
    kind: Literal["maintenance", "silence"]
    until: datetime
    recurring: bool
    reason: str | None


class MaintenanceWindow(Shape):
    id: int
    kind: Literal["maintenance", "silence"]
    selector: str
    recurring: bool
    cron: str | None
    duration_s: float | None
    tz: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    reason: str | None
    created_at: datetime
    created_by: str
    active: bool
    active_until: datetime | None
    next_start: datetime | None


class Learned(Shape):
    active_target: Literal["primary", "backup"]
    replicas: int | None
    vars: dict[str, str | None]


class PushFacts(Shape):
    """A push monitor's pings (docs/push.md); its ping URL is never part of the API."""

    last_ping_at: datetime | None
    last_ping_kind: Literal["success", "start", "fail"] | None
    last_exit_status: int | None
    last_success_at: datetime | None
    last_duration_s: float | None
    next_expected_at: datetime | None
    grace_s: float
    last_body: Annotated[str | None, Field(description="the last ping's body (capped, redacted): the run's log "
                                                        "excerpt; in a single component's answer only")] = None


class Component(Shape):
    name: str
    kind: Literal["http", "tcp", "command", "push"]
    url: str | None
    interval_s: float
    timeout_s: float
    failure_threshold: int
    success_threshold: int
    retry_interval_s: float | None
    max_probe_interval_s: float | None
    plan: str | None
    criticality: Criticality
    labels: dict[str, str]
    vars: dict[str, str]
    secret_vars: dict[str, str]
    backup_url: str | None
    replicas: int | None
    min_replicas: int | None
    max_replicas: int | None
    depends_on: list[str]
    check: Annotated[dict[str, Any], Field(description="the check's settings that differ from their defaults")]
    paused_until: datetime | None
    paused_reason: str | None
    state: ComponentState
    state_since: datetime | None
    last_check_at: datetime | None
    next_check_at: datetime | None
    last_latency_ms: float | None
    last_error: str | None
    open_incident: int | None
    state_reason: str | None
    early_warning: Annotated[dict[str, Any], Field(
        description="early-warning overrides ({} = defaults; docs/degradation.md)")]
    tls_expires_at: Annotated[datetime | None, Field(
        description="when the certificate the https check last saw expires")]
    tls_days_left: Annotated[float | None, Field(description="days until tls_expires_at (negative: expired)")]
    windows: Annotated[list[ComponentWindow], Field(
        description="maintenance windows and silences in force over it (docs/maintenance.md)")]
    learned: Annotated[Learned, Field(description="what recovery learned: it overrides the declared replicas "
                                                  "and vars while set (docs/cli.md)")]
    push: Annotated[PushFacts | None, Field(description="a push monitor's last ping, last success and next "
                                                        "expected success (null for polled kinds)")]


class Transition(Shape):
    id: int
    component: str
    at: datetime
    from_state: str
    to_state: str
    reason: str | None


class Incident(Shape):
    id: int
    component: str | None
    kind: IncidentKind
    status: IncidentStatus
    resolution: Resolution | None
    reason: str | None
    status_reason: str | None
    plan: str | None
    blocked_by: str | None
    next_attempt_at: datetime | None
    last_error: str | None
    waiting_for: Annotated[str | None, Field(description="what a waiting incident waits for (docs/guarantees.md)")]
    waiting_until: Annotated[datetime | None, Field(description="when the loop looks at it again at the latest")]
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    escalated_at: datetime | None
    acked_at: datetime | None
    acked_by: str | None
    approved_at: datetime | None
    approved_by: str | None
    reopen_count: int
    resolved_by_step: int | None
    flap_episode: int | None
    source: Annotated[IncidentSource, Field(description="what opened it: the component's check, or an alert")]
    escalation_tier: Annotated[int, Field(description="the escalation tier reached (0: none; docs/notifications.md)")]


class JournalRow(Shape):
    step_index: int
    attempt: int
    strategy: str
    status: AttemptStatus
    executed: bool
    owner: str | None
    claimed_at: datetime
    finished_at: datetime | None
    description: str | None
    detail: str | None
    skip_reason: str | None
    output: str | None
    facts: dict[str, Any]
    verification: dict[str, Any]


class Notification(Shape):
    event: str
    channel: str
    status: str
    title: str | None
    error: str | None
    created_at: datetime


class Note(Shape):
    at: datetime
    author: str
    text: str


class IncidentUpdate(Shape):
    id: int
    incident_id: int
    at: datetime
    state: UpdateState
    message: str
    public: bool
    author: str


class AlertView(Shape):
    name: str | None
    status: Literal["firing", "resolved"]
    origin: Literal["alertmanager", "generic"]
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    runbook_url: Annotated[str | None, Field(description="annotations.runbook_url when it is an http(s) link")]
    generator_url: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    received_at: datetime


class IncidentEvent(Shape):
    at: datetime
    kind: str
    reason: str | None


class IncidentDetail(Incident):
    journal: list[JournalRow]
    notifications: list[Notification]
    notes: list[Note]
    alerts: Annotated[list[AlertView], Field(description="the alerts that opened or joined it (docs/alerts.md)")]
    events: Annotated[list[IncidentEvent], Field(description="its timeline: status changes, reminders, tiers, alerts")]


class Instance(Shape):
    id: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    alive: bool
    view_reliable: bool
    dropped_results: int
    drops: Annotated[dict[str, int], Field(description="results, transitions and rollups not written, by cause")]
    writes_failing_since: datetime | None
    plan_warning: str | None


class Daemon(Shape):
    mode: Literal["daemon", "database"]
    daemons_alive: int
    scheduler_running: bool | None
    scheduler_stalled_s: float | None
    view_reliable: bool
    dropped_results: int
    db_writes_failing_s: float | None
    drops: dict[str, int]
    db_writes_healthy: bool | None
    skipped_runs: int | None
    lateness_p99_ms: float | None


class ComponentCounts(Shape):
    total: int
    by_state: dict[str, int]


class IncidentCounts(Shape):
    open: int
    by_status: dict[str, int]


class Status(Shape):
    generated_at: datetime
    components: ComponentCounts
    incidents: IncidentCounts
    instances: list[Instance]
    daemon: Daemon


class Override(Shape):
    level: DegradationLevel
    reason: str
    actor: str
    since: datetime
    expires_at: datetime


class SelfProtection(Shape):
    level: DegradationLevel
    since: datetime
    reason: str
    checks: str


class Degradation(Shape):
    scope: str
    level: DegradationLevel
    version: int
    since: datetime
    reasons: list[str]
    features: Annotated[dict[str, bool | float | str], Field(
        description="application-defined flags at this level (docs/degradation.md)")]
    ttl_s: float
    computed: DegradationLevel
    held_until: Annotated[datetime | None, Field(
        description="while level is above computed: when it steps down one level if the rules keep asking for less")]
    self_protection: SelfProtection | None
    override: Override | None


class RecoveryStarted(Shape):
    incident: int
    status_url: str


class RecoveryDryRun(Shape):
    dry_run: bool
    steps: list[str]


class ErrorDetail(Shape):
    message: str
    field: Annotated[str | None, Field(description="The field, parameter or header at fault, when one is.")]
    status: int


class Error(Shape):
    """Every error answer of the API, whatever its status."""

    error: ErrorDetail


class Page(Shape):
    limit: int
    next_cursor: Annotated[str | None, Field(description="Pass back as cursor for the next page.")]


class ComponentPage(Page):
    items: list[Component]


class IncidentPage(Page):
    items: list[Incident]


class TransitionPage(Page):
    items: list[Transition]


class MaintenanceWindowList(Shape):
    items: list[MaintenanceWindow]


class InstanceList(Shape):
    items: list[Instance]


class User(Shape):
    name: str
    role: Literal["viewer", "operator", "admin"]
    created_at: datetime
    password_changed_at: datetime
    #: tokens neither revoked nor expired
    active_tokens: int


class UserList(Shape):
    items: list[User]


class Me(Shape):
    """Who the request acted as."""

    name: str
    role: Literal["viewer", "operator", "admin"]
    token_id: int | None
    scope: Literal["read", "write"]
