"""Degradation level changes to the notification targets (Apprise URLs, signed webhooks).

The durable ``degradation_events`` rows are the queue, as incident events are: :func:`flush` (the
daemon's notify job) takes the rows not yet notified by compare-and-set, sends them as one message
when ``"degradation"`` is among ``notifications.events`` (else just marks them), and stores one
Notification row per delivery, destinations redacted. A crash before the take leaves them for later;
two processes never send one row twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select, update

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.redaction import redact
from orchestrator.db.engine import Database
from orchestrator.db.models import DegradationEvent, Notification
from orchestrator.incidents.notify_send import Delivery, send
from orchestrator.incidents.routing import Notifications

log = logging.getLogger("orchestrator.degradation")

#: Rows taken per flush at most.
BATCH = 100
EVENT = "degradation"


def compose(rows: list[DegradationEvent]) -> tuple[str, str]:
    """(title, body) of one message about level changes (oldest first)."""
    last = rows[-1]
    who = f" (override by {last.actor})" if last.actor else ""
    title = f"[degradation] {last.scope} {last.from_level or 'normal'} -> {last.to_level}{who}"
    if len(rows) > 1:
        title += f" ({len(rows)} changes)"
    lines = []
    for row in rows:
        reasons = "; ".join(row.reasons or []) or "no rule fires"
        lines.append(f"{row.at:%H:%M:%S} {row.scope}: {row.from_level or 'normal'} -> {row.to_level}: {reasons}")
    return redact(title), redact("\n".join(lines))


def flush(db: Database, config: Notifications, *, clock: Clock = SYSTEM_CLOCK,
          sender: Callable[..., list[Delivery]] = send, timeout_s: float = 10.0) -> int:
    """Send the level changes not yet notified; the number of changes sent."""
    now = clock.now()
    with db.write() as session:
        ids = list(session.scalars(select(DegradationEvent.id).where(DegradationEvent.notified_at.is_(None))
                                   .order_by(DegradationEvent.id).limit(BATCH)))
        if not ids:
            return 0
        taken = set(session.scalars(update(DegradationEvent).where(
            DegradationEvent.id.in_(ids), DegradationEvent.notified_at.is_(None)).values(notified_at=now)
            .returning(DegradationEvent.id).execution_options(synchronize_session=False)))
        rows = [r for r in session.scalars(select(DegradationEvent).where(DegradationEvent.id.in_(taken))
                                           .order_by(DegradationEvent.id))]
        for row in rows:
            session.expunge(row)
    if not rows or EVENT not in config.events:
        return 0
    title, body = compose(rows)
    if not config.urls and not config.webhooks:
        log.info("no notification targets configured: %s", title)
        return 0
    payload = {"events": [EVENT], "degradation": [{"scope": r.scope, "from": r.from_level, "to": r.to_level,
                                                   "at": r.at.isoformat()} for r in rows]}
    try:
        deliveries = sender(config.urls, config.webhooks, title, body, timeout_s, payload=payload)
    except Exception as exc:  # a sender bug must not lose the record that we tried
        log.exception("degradation notification failed")
        deliveries = [Delivery("(all targets)", "apprise", False, redact(f"{type(exc).__name__}: {exc}"), 0.0)]
    sent_at = clock.now()
    with db.write() as session:
        for d in deliveries:
            session.add(Notification(event=EVENT, channel=redact(d.target), status="sent" if d.ok else "failed",
                                     title=title, body=body, error=None if d.ok else redact(d.detail),
                                     created_at=now, sent_at=sent_at if d.ok else None))
    for d in deliveries:
        log.log(logging.INFO if d.ok else logging.WARNING, "notification %r to %s: %s", title, d.target, d.detail)
    return len(rows)
