"""Incident notifications outside plans: opened, escalated, resolved… grouped into one message per window.

The events come from the database: every incident status change writes an incident_events row in its
own transaction (:mod:`orchestrator.incidents.status`), and :meth:`Notifier.collect` reads the rows
not yet notified. Those whose kind is listed in ``notifications.events`` are queued (so is anything
given to :meth:`Notifier.publish`). The first queued event opens a window of ``group_window_s``;
:meth:`Notifier.flush`, which the daemon calls periodically, collects, then sends everything queued
as ONE message once the window has passed — so twenty components failing within ten seconds page
on-call once, not twenty times. Rows are taken by compare-and-set just before sending (at most once,
even with a second process collecting too); a crash before that leaves them for the next process.
Each delivery is stored as a Notification row with its destination redacted. An event about a
component under a silence (:mod:`orchestrator.components.windows`) is not sent: it is stored as a
``silenced`` Notification row naming the silence (invariant 4: muted, never lost); a silence that
cannot be read mutes nothing. What a message says
(subjects naming component and state, links to ``public_url``, the webhook document) is
:mod:`orchestrator.incidents.notify_message`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import first_line
from orchestrator.core.redaction import redact
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, Incident, Notification
from orchestrator.db.watch import DatabaseWatch
from orchestrator.incidents import events
from orchestrator.incidents.escalation import ESCALATION, REMINDER, Escalator, targets_of
from orchestrator.incidents.events import IncidentEvent
from orchestrator.incidents.notify_message import Context, compose, compose_html, document
from orchestrator.incidents.notify_send import Delivery, Webhook, send
from orchestrator.incidents.routing import Notifications

log = logging.getLogger("orchestrator.incidents.notifier")

#: Seconds one delivery may take at most.
DEFAULT_SEND_TIMEOUT_S = 10.0
#: Event rows read per collect at most (a backlog drains over a few flushes).
COLLECT_LIMIT = 1000


#: Which components a silence mutes now: ``(session, now, {name: labels})`` -> ``{name: (silence id, until)}``.
#: Given by the layer that owns silences (components.windows.silenced): incidents sit below components.
SilenceLookup = Callable[[Session, datetime, Mapping[str, Any]], Mapping[str, tuple[int, datetime]]]


class Notifier:
    """Queues incident events and sends them grouped. Thread-safe."""

    def __init__(self, db: Database, config: Notifications, *, clock: Clock = SYSTEM_CLOCK,
                 sender: Callable[..., list[Delivery]] = send,
                 send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S, public_url: str | None = None,
                 silences: SilenceLookup | None = None) -> None:
        self.db, self.clock, self.sender, self.send_timeout_s = db, clock, sender, send_timeout_s
        self.config = config
        #: the silences in force (None: nothing is ever silenced)
        self.silences = silences
        #: reminders and tiers (notifications.escalation), ticked by :meth:`flush`
        self.escalator = Escalator(db, config.escalation, clock=clock)
        #: where the incident pages are served (config ``public_url``): every message links there
        self.public_url = public_url
        self._lock = threading.Lock()
        self._pending: list[IncidentEvent] = []
        self._window_started: float | None = None
        #: incident_events ids queued or being sent by this process (read again until taken, never twice)
        self._queued: set[int] = set()
        #: one log line when the events cannot be read any more, one when they can again
        self._db_watch = DatabaseWatch(log, "notifier: reading incident events", clock=clock)

    def reload(self, config: Notifications) -> None:
        """New routing (SIGHUP); what is queued goes out under the new settings."""
        with self._lock:
            self.config = config
            self.escalator.policy = config.escalation

    def _routed_kinds(self) -> set[str]:
        """Kinds that are sent: ``events``, and reminders and tiers when a policy makes them."""
        with self._lock:
            config = self.config
        return set(config.events) | ({REMINDER, ESCALATION} if config.escalation.active else set())

    def publish(self, event: IncidentEvent) -> None:
        """Queue ``event`` if its kind is routed; opens a grouping window if none is open. A window opened
        by an event read from the database starts when the event happened (at most one window ago), not
        when this process read it: an event that waited through a daemon restart does not wait a second
        window (invariant 2: a blocked incident is told within the window)."""
        routed = self._routed_kinds()
        with self._lock:
            if event.kind not in routed:
                return
            if self._window_started is None:
                mono, waited_s = self.clock.monotonic(), 0.0
                if event.event_id is not None:
                    age_s = (self.clock.now() - event.at).total_seconds()
                    waited_s = min(max(0.0, age_s), self.config.group_window_s)
                self._window_started = mono - waited_s
            self._pending.append(event)
            if event.event_id is not None:
                self._queued.add(event.event_id)

    def collect(self) -> int:
        """Queue the incident_events rows written since the last look; the number queued. Rows of kinds
        not routed anywhere are marked notified at once."""
        with self._lock:
            queued = set(self._queued)
        with self.db.read() as session:
            batch = events.pending(session, COLLECT_LIMIT, besides=queued)
        if not batch:
            return 0
        routed = self._routed_kinds()
        ignored = [e.event_id for e in batch if e.kind not in routed and e.event_id is not None]
        for event in batch:
            if event.kind in routed:
                self.publish(event)
        if ignored:
            with self.db.write() as session:
                events.take(session, ignored, self.clock.now())
        return len(batch) - len(ignored)

    def pending(self) -> int:
        """Events queued and not yet sent."""
        with self._lock:
            return len(self._pending)

    def flush(self, force: bool = False) -> int:
        """Send the queued events as one message if the window has passed (or ``force``); return the
        number of batches sent (0 or 1; a batch is one message per distinct set of routed targets)."""
        try:
            self.escalator.tick()  # reminders and tiers due become events, collected just below
            self.collect()
        except Exception as exc:  # the database may be away: send what is queued, read the rest later
            self._db_watch.failed(exc)
        else:
            self._db_watch.ok()
        with self._lock:
            if not self._pending or self._window_started is None:
                return 0
            if not force and self.clock.monotonic() - self._window_started < self.config.group_window_s:
                return 0
            batch, self._pending, self._window_started = self._pending, [], None
            config = self.config
        self._deliver(batch, config)
        return 1

    def _deliver(self, batch: list[IncidentEvent], config: Notifications) -> int:
        batch = self._take(batch)
        if batch:
            batch = self._unsilenced(batch)
        if not batch:
            return 0
        context = self._context(batch)
        groups: dict[tuple[bool, tuple[str, ...]], list[IncidentEvent]] = {}
        for event in batch:  # one message per distinct set of destinations (routes, tiers)
            component = context.components.get(event.component_name or "", {})
            key = targets_of(event.kind, component.get("labels") or {}, component.get("criticality"),
                             int(context.incidents.get(event.incident_id, {}).get("tier") or 0),
                             routes=config.routes, policy=config.escalation)
            groups.setdefault((key[0], tuple(key[1])), []).append(event)
        for (default, names), group in groups.items():
            urls = [*(config.urls if default else []), *(u for n in names for u in config.targets[n].urls)]
            hooks = [*(config.webhooks if default else []), *(h for n in names for h in config.targets[n].webhooks)]
            self._send(group, context, list(dict.fromkeys(urls)), list(dict.fromkeys(hooks)))
        return len(groups)

    def _send(self, batch: list[IncidentEvent], context: Context, urls: list[str], webhooks: list[Webhook]) -> None:
        title, body = compose(batch, context)
        incidents = {e.incident_id for e in batch}
        kinds = {e.kind for e in batch}
        if not urls and not webhooks:
            log.info("no notification targets configured: %s", title)
            return
        created = self.clock.now()
        try:
            deliveries = self.sender(urls, webhooks, title, body, self.send_timeout_s,
                                     payload=document(batch, context, created), html=compose_html(batch, context),
                                     timestamp=int(self.clock.now().timestamp()))
        except Exception as exc:  # a sender bug must not lose the record that we tried
            log.exception("notification sending failed")
            deliveries = [Delivery("(all targets)", "apprise", False, redact(f"{type(exc).__name__}: {exc}"), 0.0)]
        sent_at = self.clock.now()
        try:
            with self.db.write() as session:
                for d in deliveries:
                    session.add(Notification(
                        incident_id=next(iter(incidents)) if len(incidents) == 1 else None,
                        event=next(iter(kinds)) if len(kinds) == 1 else "digest",
                        channel=redact(d.target), status="sent" if d.ok else "failed", title=title, body=body,
                        error=None if d.ok else redact(d.detail), created_at=created,
                        sent_at=sent_at if d.ok else None))
        except Exception:  # the message went out; failing to record it must not stop the daemon's loop
            log.exception("could not store notification records for %r", title)
        for d in deliveries:
            log.log(logging.INFO if d.ok else logging.WARNING, "notification %r to %s: %s", title, d.target, d.detail)

    def _unsilenced(self, batch: list[IncidentEvent]) -> list[IncidentEvent]:
        """The events of ``batch`` no silence covers; the others are recorded as silenced. Must never
        break invariant 3 (a human is told): only an open silence whose selector picks the event's
        component mutes it, and when the silences cannot be read everything is sent."""
        now = self.clock.now()
        names = {e.component_name for e in batch if e.component_name}
        if not names or self.silences is None:
            return batch
        try:
            with self.db.write() as session:
                labels: dict[str, dict[str, Any]] = dict(session.execute(select(Component.name, Component.labels)
                                              .where(Component.name.in_(sorted(names)))).all())
                muted = self.silences(session, now, labels)
                if not muted:
                    return batch
                kept = []
                for event in batch:
                    found = muted.get(event.component_name) if event.component_name else None
                    if found is None:
                        kept.append(event)
                        continue
                    window_id, until = found
                    title = f"{event.kind} {event.component_name}: silenced by silence {window_id}"
                    session.add(Notification(incident_id=event.incident_id, event=event.kind[:32],
                                             channel=f"silence:{window_id}", status="silenced", title=title,
                                             body=redact(event.reason or ""), created_at=now))
                    log.info("notification silenced component=%s incident=%s silence=%s until=%s", event.component_name,
                             event.incident_id, window_id, until.isoformat(timespec="seconds"))
                return kept
        except Exception as exc:
            log.warning("silences unavailable, notifying anyway: %s", first_line(exc))
            return batch

    def _context(self, batch: list[IncidentEvent]) -> Context:
        """The incidents' status and the components' state and labels, read now. Invariant 3 (a human is
        told): failing to read them must never stop the message; it goes out with what the events say."""
        ids = sorted({e.incident_id for e in batch})
        names = sorted({e.component_name for e in batch if e.component_name})
        try:
            with self.db.read() as session:
                incidents = {row.id: {"status": row.status, "resolution": row.resolution,
                                      "opened_at": row.opened_at, "resolved_at": row.resolved_at,
                                      "tier": row.escalation_tier}
                             for row in session.scalars(select(Incident).where(Incident.id.in_(ids)))}
                components = {row.name: {"state": row.state, "labels": dict(row.labels or {}),
                                         "criticality": row.criticality}
                              for row in session.scalars(select(Component).where(Component.name.in_(names)))}
        except Exception as exc:
            log.warning("notification context unavailable, sending without it: %s", first_line(exc))
            return Context(self.public_url)
        return Context(self.public_url, incidents, components)

    def _take(self, batch: list[IncidentEvent]) -> list[IncidentEvent]:
        """The events of ``batch`` this process may send: rows taken now by compare-and-set (another
        process may have sent some), and events that have no row. A failed take keeps them queued."""
        ids = [e.event_id for e in batch if e.event_id is not None]
        if not ids:
            return batch
        try:
            with self.db.write() as session:
                taken = events.take(session, ids, self.clock.now())
        except Exception as exc:
            log.warning("could not take incident events, sending at the next flush: %s", first_line(exc))
            with self._lock:
                # these events have waited out their window already: due at the next flush, not a window
                # later (a database cut at the moment of sending put a blocked incident's notice 30 s late)
                self._pending[:0] = batch
                due = self.clock.monotonic() - self.config.group_window_s
                self._window_started = due if self._window_started is None else min(self._window_started, due)
            return []
        with self._lock:  # taken now, here or by another process: no longer pending in the database
            self._queued.difference_update(ids)
        return [e for e in batch if e.event_id is None or e.event_id in taken]
