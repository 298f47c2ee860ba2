"""Incident notifications outside plans: opened, escalated, resolved… grouped into one message per window.

Events listed in ``notifications.events`` are queued by :meth:`Notifier.publish` (cheap; any thread).
The first queued event opens a window of ``group_window_s``; :meth:`Notifier.flush`, which the daemon
calls periodically, sends everything queued as ONE message once the window has passed — so twenty
components failing within ten seconds page on-call once, not twenty times. Each delivery is stored
as a Notification row with its destination redacted.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.redaction import redact
from orchestrator.db.engine import Database
from orchestrator.db.models import Notification
from orchestrator.incidents.lifecycle import IncidentEvent
from orchestrator.incidents.notify_send import Delivery, send
from orchestrator.plans import Notifications

log = logging.getLogger("orchestrator.incidents.notifier")

#: Seconds one delivery may take at most.
DEFAULT_SEND_TIMEOUT_S = 10.0
#: Events listed in one message at most; the rest are counted.
MAX_LINES = 50


def _line(event: IncidentEvent) -> str:
    who = event.component_name or "fleet"
    reason = f": {event.reason}" if event.reason else ""
    resolution = f" ({event.resolution})" if event.resolution else ""
    return f"{event.at:%H:%M:%S} incident {event.incident_id} {who} {event.kind}{resolution}{reason}"


def compose(events: list[IncidentEvent]) -> tuple[str, str]:
    """(title, body) of one message about ``events`` (oldest first)."""
    if len(events) == 1:
        e = events[0]
        title = f"[incident {e.incident_id}] {e.component_name or 'fleet'} {e.kind}"
    else:
        counts = Counter(e.kind for e in events)
        title = f"{len(events)} incident events: " + ", ".join(f"{n} {k}" for k, n in counts.most_common())
    lines = [_line(e) for e in events[:MAX_LINES]]
    if len(events) > MAX_LINES:
        lines.append(f"… and {len(events) - MAX_LINES} more")
    return redact(title), redact("\n".join(lines))


class Notifier:
    """Queues incident events and sends them grouped. Thread-safe."""

    def __init__(self, db: Database, config: Notifications, *, clock: Clock = SYSTEM_CLOCK,
                 sender: Callable[..., list[Delivery]] = send,
                 send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S) -> None:
        self.db, self.clock, self.sender, self.send_timeout_s = db, clock, sender, send_timeout_s
        self.config = config
        self._lock = threading.Lock()
        self._pending: list[IncidentEvent] = []
        self._window_started: float | None = None

    def reload(self, config: Notifications) -> None:
        """New routing (SIGHUP); what is queued goes out under the new settings."""
        with self._lock:
            self.config = config

    def publish(self, event: IncidentEvent) -> None:
        """Queue ``event`` if its kind is routed; opens a grouping window if none is open."""
        with self._lock:
            if event.kind not in self.config.events:
                return
            if self._window_started is None:
                self._window_started = self.clock.monotonic()
            self._pending.append(event)

    def pending(self) -> int:
        """Events queued and not yet sent."""
        with self._lock:
            return len(self._pending)

    def flush(self, force: bool = False) -> int:
        """Send the queued events as one message if the window has passed (or ``force``); return the
        number of messages sent (0 or 1)."""
        with self._lock:
            if not self._pending or self._window_started is None:
                return 0
            if not force and self.clock.monotonic() - self._window_started < self.config.group_window_s:
                return 0
            batch, self._pending, self._window_started = self._pending, [], None
            config = self.config
        self._deliver(batch, config)
        return 1

    def _deliver(self, batch: list[IncidentEvent], config: Notifications) -> None:
        title, body = compose(batch)
        incidents = {e.incident_id for e in batch}
        kinds = {e.kind for e in batch}
        if not config.urls and not config.webhooks:
            log.info("no notification targets configured: %s", title)
            return
        created = self.clock.now()
        try:
            deliveries = self.sender(config.urls, config.webhooks, title, body, self.send_timeout_s,
                                     payload={"incidents": sorted(incidents), "events": sorted(kinds)})
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
