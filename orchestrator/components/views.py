"""Plain view models of database rows: the stable shapes printed as JSON and given to templates.

Views leave the process (CLI tables and JSON, the web API, reports), so they are built redacted:
URL passwords, secret-looking headers and vars, ``secret_vars`` and the component's secret values
anywhere in its texts (last error...) show as ``***``; ``${env:…}`` references stay visible.

The CLI's ``--json`` and the web API print the same items from here; the API only wraps lists in a
pagination envelope. Filters and keyset pagination (``after`` the last name or id seen, ``limit``)
run in SQL, so a page of a 10,000-component fleet reads one page of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from orchestrator.components.registry import definition_of
from orchestrator.components.targets import learned_view
from orchestrator.components.windows import OpenWindows, cover, cover_view, load_windows, open_windows
from orchestrator.core.errors import InputError, NotFoundError
from orchestrator.core.push_schedule import DEFAULT_PUSH_GRACE_S, next_expected
from orchestrator.core.redaction import redact_view, secret_values
from orchestrator.core.states import ComponentState
from orchestrator.db.models import Component, DaemonInstance, PushPing, StateTransition
from orchestrator.incidents.queries import open_incidents_by_component

#: an instance whose heartbeat is older than this is shown as gone
ALIVE_WITHIN_S = 20.0


def effective_state(row: Component, now: datetime) -> str:
    """The state an operator should see: a hold set by the CLI shows at once, before the daemon acts."""
    return row.hold_at(now) or row.state


def effective_state_sql(now: datetime) -> ColumnElement[str]:
    """:func:`effective_state` as an SQL expression (the same precedence as ``Component.hold_at``)."""
    return case(
        (and_(Component.paused_until.is_not(None), Component.paused_until > now), ComponentState.PAUSED.value),
        (and_(Component.maintenance_until.is_not(None), Component.maintenance_until > now),
         ComponentState.MAINTENANCE.value),
        else_=Component.state,
    )


@dataclass(frozen=True)
class ComponentFilter:
    """Which components a listing shows: any of ``states`` (effective), all of ``labels`` (k, v)."""

    states: Sequence[str] = ()
    labels: Sequence[tuple[str, str]] = ()

    def __post_init__(self) -> None:
        known = {s.value for s in ComponentState}
        for state in self.states:
            if state not in known:
                raise InputError(f"unknown state {state!r} (one of {', '.join(sorted(known))})", field="state")

    def where(self, now: datetime) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = []
        if self.states:
            clauses.append(effective_state_sql(now).in_(list(self.states)))
        for key, value in self.labels:
            clauses.append(Component.labels[key].as_string() == value)
        return clauses


def component_view(row: Component, names_by_id: dict[int, str], now: datetime,
                   open_incident: int | None = None, windows: OpenWindows | None = None,
                   pings: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One component as `component list --json` prints it (documented in docs/cli.md), redacted.

    ``windows`` are the maintenance windows and silences open now (those whose selector picks it are
    listed under ``windows``); ``pings`` a push monitor's ping facts by component id."""
    definition = definition_of(row, names_by_id)
    check = definition.pop("check")
    state = effective_state(row, now)
    view = {
        "name": row.name,
        "kind": row.check_kind,
        "url": row.url,
        **{k: v for k, v in definition.items() if k != "name"},
        "check": check,
        "paused_until": row.paused_until,
        "paused_reason": row.paused_reason,
        "state": state,
        "state_since": row.state_since,
        # why it is degraded, down...: the reason of the transition into its state (None when up, or
        # while a hold set by the CLI is not yet the daemon's)
        "state_reason": row.state_reason if state == row.state else None,
        "last_check_at": row.last_check_at,
        "next_check_at": row.next_check_at,
        "last_latency_ms": row.last_latency_ms,
        "last_error": row.last_error,
        "open_incident": open_incident,
        # the certificate an https check last saw, and its days left now (None for other checks)
        "tls_expires_at": row.tls_expires_at,
        "tls_days_left": None if row.tls_expires_at is None else
        round((row.tls_expires_at - now).total_seconds() / 86400, 1),
        "windows": cover_view(cover(windows or [], row.labels)),
        # what recovery learned; it overrides the declared replicas/vars above while set
        "learned": learned_view(row),
        "push": push_facts(row, (pings or {}).get(row.id, {})) if row.check_kind == "push" else None,
    }
    return redact_view(view, secret_values(row))


def push_facts(row: Component, pings: dict[str, Any]) -> dict[str, Any]:
    """A push monitor's last ping and success, and when its next success is expected: as the daemon
    last wrote it, or from its schedule after the last success (or its creation) before the daemon did."""
    spec = row.check_spec
    expected = row.next_check_at
    if expected is None:
        expected = next_expected(pings.get("last_success_at") or row.created_at, period_s=spec.get("period_s"),
                                 schedule=spec.get("schedule"), tz=spec.get("tz"))
    last = pings.get("last")
    facts = {"last_ping_at": last.received_at if last else None, "last_ping_kind": last.kind if last else None,
             "last_exit_status": last.exit_status if last else None,
             "last_success_at": pings.get("last_success_at"), "last_duration_s": pings.get("last_duration_s"),
             "next_expected_at": expected, "grace_s": spec.get("grace_s", DEFAULT_PUSH_GRACE_S)}
    if pings.get("with_body"):
        facts["last_body"] = last.body if last else None
    return facts


def push_summary(view: dict[str, Any]) -> str | None:
    """One line on a push monitor for tables and the page: its last ping, the run's duration, the next
    expected success (None for polled kinds)."""
    push = view.get("push")
    if push is None:
        return None
    parts = []
    if push["last_ping_at"] is None:
        parts.append("never pinged")
    else:
        kind = push["last_ping_kind"] if push["last_exit_status"] is None else \
            f"{push['last_ping_kind']} (exit {push['last_exit_status']})"
        parts.append(f"last ping {_short(push['last_ping_at'])} {kind}")
    if push["last_duration_s"] is not None:
        parts.append(f"took {push['last_duration_s']:.1f}s")
    if push["next_expected_at"] is not None:
        parts.append(f"next by {_short(push['next_expected_at'])} + {push['grace_s']:g}s grace")
    return ", ".join(parts)


def push_schedule_text(view: dict[str, Any]) -> str:
    """``push every 86400s`` / ``push 0 3 * * * Europe/Berlin``: what stands where a URL would."""
    check = view["check"]
    if check.get("schedule"):
        return f"push {check['schedule']} {check.get('tz') or 'UTC'}"
    return f"push every {check.get('period_s', 0):g}s"


def _short(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


def last_success_ids(ids: Sequence[int] | None = None):
    """The id of each push monitor's newest success ping (of ``ids``, or of all): a subquery
    (ix_push_pings_component_id_id)."""
    stmt = select(func.max(PushPing.id)).where(PushPing.kind == "success")
    if ids is not None:
        stmt = stmt.where(PushPing.component_id.in_(ids))
    return stmt.group_by(PushPing.component_id)


def ping_facts(session: Session, ids: Sequence[int], *, with_body: bool = False) -> dict[int, dict[str, Any]]:
    """For each push monitor in ``ids``: its last ping row, last success time and its run's duration
    (``with_body``: the last ping's body is shown too, for one component's view)."""
    if not ids:
        return {}
    out: dict[int, dict[str, Any]] = {cid: {"with_body": with_body} for cid in ids}
    last_ids = select(func.max(PushPing.id)).where(PushPing.component_id.in_(ids)).group_by(PushPing.component_id)
    for ping in session.scalars(select(PushPing).where(PushPing.id.in_(last_ids))):
        out[ping.component_id]["last"] = ping
    for cid, at, duration in session.execute(select(PushPing.component_id, PushPing.received_at, PushPing.duration_s)
                                             .where(PushPing.id.in_(last_success_ids(ids)))):
        out[cid].update(last_success_at=at, last_duration_s=duration)
    return out


def component_views(session: Session, now: datetime, name: str | None = None, *,
                    where: ComponentFilter | None = None, after: str | None = None,
                    limit: int | None = None) -> list[dict[str, Any]]:
    """Components by name (or just ``name``'s; NotFoundError if unknown), each with its open incident.

    ``where`` filters, ``after``/``limit`` page through the names in order.
    """
    stmt = select(Component).order_by(Component.name)
    if name is not None:
        stmt = stmt.where(Component.name == name)
    if where is not None:
        stmt = stmt.where(*where.where(now))
    if after is not None:
        stmt = stmt.where(Component.name > after)
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = list(session.scalars(stmt))
    if name is not None and not rows:
        raise NotFoundError(f"no component named {name!r}", field="name")
    names = _dependency_names(session, rows)
    incidents = open_incidents_by_component(session)
    windows = open_windows(load_windows(session), now)
    pings = ping_facts(session, [r.id for r in rows if r.check_kind == "push"], with_body=name is not None)
    return [component_view(r, names, now, incidents.get(r.id), windows, pings) for r in rows]


def _dependency_names(session: Session, rows: list[Component]) -> dict[int, str]:
    """id → name of every component the given rows depend on (and of the rows themselves)."""
    names = {r.id: r.name for r in rows}
    wanted = {d.depends_on_id for r in rows for d in r.dependencies} - names.keys()
    if wanted:
        names.update(session.execute(select(Component.id, Component.name).where(Component.id.in_(wanted))).all())
    return names


def state_counts(session: Session, now: datetime) -> dict[str, int]:
    """Every state (effective, as listed) → how many components are in it; zero ones included."""
    state = effective_state_sql(now)
    counts = dict.fromkeys((s.value for s in ComponentState), 0)
    for value, n in session.execute(select(state, func.count()).group_by(state)):
        counts[value] = counts.get(value, 0) + n
    return counts


def transition_views(session: Session, name: str, *, before: int | None = None,
                     limit: int | None = None) -> list[dict[str, Any]]:
    """A component's state transitions, newest first (``before`` an id, to page back in time)."""
    component_id = session.scalar(select(Component.id).where(Component.name == name))
    if component_id is None:
        raise NotFoundError(f"no component named {name!r}", field="name")
    stmt = (select(StateTransition).where(StateTransition.component_id == component_id)
            .order_by(StateTransition.id.desc()))
    if before is not None:
        stmt = stmt.where(StateTransition.id < before)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [{"id": t.id, "component": name, "at": t.at, "from_state": t.from_state, "to_state": t.to_state,
             "reason": t.reason} for t in session.scalars(stmt)]


def instance_views(session: Session, now: datetime, *, limit: int = 20) -> list[dict[str, Any]]:
    """Daemon instances not recorded as stopped, newest first, each with ``alive`` from its heartbeat."""
    rows = session.scalars(select(DaemonInstance).where(DaemonInstance.stopped_at.is_(None))
                           .order_by(DaemonInstance.started_at.desc()).limit(limit))
    return [{"id": r.id, "host": r.host, "pid": r.pid, "version": r.version, "started_at": r.started_at,
             "heartbeat_at": r.heartbeat_at, "alive": now - r.heartbeat_at < timedelta(seconds=ALIVE_WITHIN_S),
             "view_reliable": r.view_reliable, "dropped_results": r.dropped_results, "drops": dict(r.drops or {}),
             "writes_failing_since": r.writes_failing_since,
             "plan_warning": r.plan_warning} for r in rows]
