"""The degradation rows: published levels, operator overrides, the history of changes; one serializer.

The evaluator (:mod:`orchestrator.degradation.service`) is the one writer of ``degradation_levels``
and of the events of policy changes; operators write overrides (set / clear) through
:func:`set_override` / :func:`clear_override`, each audited. :func:`document` is the one shape an
application reads, from the API, the state file, the CLI and the client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import InputError, NotFoundError
from orchestrator.core.redaction import redact
from orchestrator.core.states import DegradationLevel
from orchestrator.db import audit
from orchestrator.db.engine import Database
from orchestrator.db.models import DegradationEvent, DegradationOverride
from orchestrator.db.models import PublishedLevel as LevelRow
from orchestrator.degradation.scopes import GLOBAL_SCOPE, parse_selector, selector_text

#: PostgreSQL channel every level change is announced on (payload: the scope's document as JSON).
NOTIFY_CHANNEL = "orchestrator_degradation"
#: The longest an override may last.
MAX_OVERRIDE_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Override:
    """An operator's level for a scope, in force until ``expires_at``."""

    id: int
    scope: str
    level: DegradationLevel
    reason: str
    actor: str
    created_at: datetime
    expires_at: datetime

    def view(self) -> dict[str, Any]:
        return {"level": self.level.value, "reason": self.reason, "actor": self.actor,
                "since": self.created_at, "expires_at": self.expires_at}

    def record(self) -> dict[str, Any]:
        """The view with times as ISO 8601 text (for the audit log's JSON)."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in self.view().items()}


def scope_name(text_: str | None) -> str:
    """The canonical scope name of user input ("global", or a label selector); InputError otherwise."""
    if text_ is None or text_ == "" or text_ == GLOBAL_SCOPE:
        return GLOBAL_SCOPE
    try:
        return selector_text(parse_selector(text_))
    except ValueError as exc:
        raise InputError(str(exc), field="scope") from None


def document(scope: str, level: str, version: int, since: datetime | None, reasons: list[str],
             features: dict[str, Any], ttl_s: float, override: Override | None,
             computed: str | None = None, *, held_until: datetime | None = None,
             self_protection: dict[str, Any] | None = None) -> dict[str, Any]:
    """A scope's published level as every reader sees it (documented in docs/degradation.md).

    ``held_until``: while the level is above what the rules compute, when it steps down one if they
    keep asking for less. ``self_protection`` (global scope only): the orchestrator's own overload and
    what it does to its checks, None while it is not overloaded."""
    return {"scope": scope, "level": level, "version": version, "since": since, "reasons": list(reasons),
            "features": dict(features), "ttl_s": ttl_s, "computed": computed or level,
            "held_until": held_until, "override": override.view() if override else None,
            "self_protection": self_protection}


def _override(row: DegradationOverride) -> Override:
    return Override(row.id, row.scope, DegradationLevel(row.level), row.reason, row.actor, row.created_at,
                    row.expires_at)


def active_overrides(session: Session, now: datetime) -> dict[str, Override]:
    """The override in force per scope (the newest when several are)."""
    rows = session.scalars(select(DegradationOverride).where(
        DegradationOverride.cleared_at.is_(None), DegradationOverride.expires_at > now)
        .order_by(DegradationOverride.id)).all()
    return {row.scope: _override(row) for row in rows}


def stored(session: Session, now: datetime) -> dict[str, dict[str, Any]]:
    """Every scope's published document as last written (a daemon's, or none yet)."""
    overrides = active_overrides(session, now)
    out = {}
    for row in session.scalars(select(LevelRow).order_by(LevelRow.scope)):
        out[row.scope] = document(row.scope, row.level, row.version, row.since, row.reasons or [],
                                  row.features or {}, row.ttl_s, overrides.get(row.scope), row.computed,
                                  held_until=row.held_until, self_protection=row.self_protection)
    return out


def write_level(session: Session, doc: dict[str, Any], *, now: datetime) -> None:
    """Upsert the scope's row from its published document."""
    row = session.get(LevelRow, doc["scope"])
    values = {"level": doc["level"], "version": doc["version"], "since": doc["since"] or now,
              "reasons": [redact(r) for r in doc["reasons"]], "features": doc["features"], "ttl_s": doc["ttl_s"],
              "computed": doc["computed"], "evaluated_at": now, "held_until": doc.get("held_until"),
              "self_protection": doc.get("self_protection")}
    if row is None:
        session.add(LevelRow(scope=doc["scope"], **values))
    else:
        for key, value in values.items():
            setattr(row, key, value)


def add_event(session: Session, doc: dict[str, Any], from_level: str | None, actor: str | None) -> None:
    """The history row of a change to ``doc`` (and a NOTIFY on PostgreSQL, sent when it commits)."""
    session.add(DegradationEvent(at=doc["since"], scope=doc["scope"], from_level=from_level,
                                 to_level=doc["level"], reasons=[redact(r) for r in doc["reasons"]], actor=actor))
    if session.get_bind().dialect.name == "postgresql":
        payload = json.dumps({k: doc[k] for k in ("scope", "level", "version", "since")}, default=str)
        session.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": NOTIFY_CHANNEL, "payload": payload})


def set_override(db: Database, scope: str, level: str, for_s: float, reason: str, *, actor: audit.Actor,
                 clock: Clock = SYSTEM_CLOCK) -> Override:
    """Publish ``level`` for ``scope`` for ``for_s`` seconds (replacing an override in force); audited."""
    try:
        level = DegradationLevel(str(level).strip().lower()).value
    except ValueError:
        raise InputError(f"unknown level {level!r} (one of {', '.join(v.value for v in DegradationLevel)})",
                         field="level") from None
    if not 0 < for_s <= MAX_OVERRIDE_S:
        raise InputError("must be more than 0 and at most 7d", field="for")
    if not reason.strip():
        raise InputError("say why (it is shown to everyone reading the level)", field="reason")
    now = clock.now()
    who = f"{actor.os_user}@{actor.host}"
    with db.write() as session:
        before = active_overrides(session, now).get(scope)
        _clear(session, scope, who, now)
        row = DegradationOverride(scope=scope, level=level, reason=redact(reason.strip()), actor=who,
                                  created_at=now, expires_at=now + timedelta(seconds=for_s))
        session.add(row)
        session.flush()
        audit.record(session, actor, "degradation_set", f"degradation:{scope}",
                     before.record() if before else None, _override(row).record(), clock=clock)
        return _override(row)


def clear_override(db: Database, scope: str, *, actor: audit.Actor, clock: Clock = SYSTEM_CLOCK) -> Override:
    """End the override in force for ``scope``; NotFoundError when there is none. Audited."""
    now = clock.now()
    who = f"{actor.os_user}@{actor.host}"
    with db.write() as session:
        before = active_overrides(session, now).get(scope)
        if before is None:
            raise NotFoundError(f"no override in force for scope {scope!r}", field="scope")
        _clear(session, scope, who, now)
        audit.record(session, actor, "degradation_clear", f"degradation:{scope}", before.record(), None, clock=clock)
        return before


def _clear(session: Session, scope: str, who: str, now: datetime) -> None:
    session.execute(update(DegradationOverride).where(
        DegradationOverride.scope == scope, DegradationOverride.cleared_at.is_(None),
        DegradationOverride.expires_at > now).values(cleared_at=now, cleared_by=who))


def history(session: Session, *, scope: str | None = None, since: datetime | None = None,
            until: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Level changes, newest first."""
    stmt = select(DegradationEvent).order_by(DegradationEvent.at.desc(), DegradationEvent.id.desc()).limit(limit)
    if scope is not None:
        stmt = stmt.where(DegradationEvent.scope == scope)
    if since is not None:
        stmt = stmt.where(DegradationEvent.at >= since)
    if until is not None:
        stmt = stmt.where(DegradationEvent.at < until)
    return [{"at": e.at, "scope": e.scope, "from": e.from_level, "to": e.to_level, "reasons": e.reasons or [],
             "actor": e.actor} for e in session.scalars(stmt)]


def level_before(session: Session, scope: str, at: datetime) -> str | None:
    """The level ``scope`` had just before ``at`` (None: no change recorded before)."""
    return session.scalar(select(DegradationEvent.to_level).where(
        DegradationEvent.scope == scope, DegradationEvent.at < at)
        .order_by(DegradationEvent.at.desc(), DegradationEvent.id.desc()).limit(1))
