"""What one incident notification says: a subject naming the component and its state, a text body
that keeps its lines, the same as HTML for targets that take it, links to the incident pages, and the
structured document webhooks receive (its JSON Schema: docs/notifications.md).

Everything here is pure: the notifier reads the database and hands in what it found (:class:`Context`).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.core.redaction import redact
from orchestrator.incidents.events import IncidentEvent

#: The version of the webhook document (``version`` field); bumped on an incompatible change.
DOCUMENT_VERSION = 1
#: Events listed in one message at most; the rest are counted.
MAX_LINES = 50
#: Components named in a digest's subject at most; the rest are counted.
MAX_SUBJECT_NAMES = 3

#: The state word a subject starts with, per incident event kind.
STATE_OF = {
    "opened": "DOWN", "reopened": "DOWN", "recovering": "RECOVERING", "step_failed": "STEP FAILED",
    "awaiting_approval": "APPROVAL NEEDED", "blocked": "BLOCKED", "escalated": "ESCALATED",
    "resolved": "RESOLVED", "degradation": "DEGRADED",
}
#: Most urgent first: a digest about several components leads with the most urgent state among them.
URGENCY = ("escalated", "blocked", "awaiting_approval", "opened", "reopened", "step_failed", "recovering",
           "resolved", "degradation")


@dataclass(frozen=True)
class Context:
    """What the database said about the events' incidents and components when the message was composed."""

    public_url: str | None = None
    #: incident id → {"status", "resolution", "opened_at", "resolved_at"}
    incidents: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    #: component name → {"state", "labels"}
    components: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def incident_url(public_url: str | None, incident_id: int) -> str | None:
    """The incident's page (orchestrator.web.pages: ``/incidents/<id>``), or None without a public URL."""
    return f"{public_url.rstrip('/')}/incidents/{incident_id}" if public_url else None


def state_of(kind: str) -> str:
    return STATE_OF.get(kind, kind.upper().replace("_", " "))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _who(event: IncidentEvent) -> str:
    return event.component_name or "fleet"


def subject(event: IncidentEvent, context: Context) -> str:
    """``[DOWN] api: 3 consecutive failures: connection refused``, ``[RESOLVED] api after 42 s: restart verified``."""
    head = f"[{state_of(event.kind)}] {_who(event)}"
    opened = context.incidents.get(event.incident_id, {}).get("opened_at")
    if event.kind == "resolved" and isinstance(opened, datetime):
        head += f" after {_duration(max(0.0, (event.at - opened).total_seconds()))}"
    what = event.reason or event.resolution
    return f"{head}: {what}" if what else head


def _subject_of_many(events: list[IncidentEvent], context: Context) -> str:
    names = list(dict.fromkeys(_who(e) for e in events))
    if len(names) == 1:  # one component: where it is now, and how many events led there
        return f"{subject(events[-1], context)} ({len(events)} events)"
    lead = min(events, key=lambda e: URGENCY.index(e.kind) if e.kind in URGENCY else len(URGENCY)).kind
    shown = ", ".join(names[:MAX_SUBJECT_NAMES])
    if len(names) > MAX_SUBJECT_NAMES:
        shown += f" and {len(names) - MAX_SUBJECT_NAMES} more"
    counts = Counter(e.kind for e in events)
    return f"[{state_of(lead)}] {shown}: " + ", ".join(f"{n} {k}" for k, n in counts.most_common())


def _line(event: IncidentEvent) -> str:
    resolution = f" ({event.resolution})" if event.resolution else ""
    reason = f": {event.reason}" if event.reason else ""
    return (f"{event.at:%H:%M:%S} [{state_of(event.kind)}] {_who(event)} incident {event.incident_id} "
            f"{event.kind}{resolution}{reason}")


def compose(events: list[IncidentEvent], context: Context | None = None) -> tuple[str, str]:
    """(subject, text body) of one message about ``events`` (oldest first): one line per event, each
    followed by its incident's link when a public URL is known."""
    context = context or Context()
    title = subject(events[0], context) if len(events) == 1 else _subject_of_many(events, context)
    lines = []
    for e in events[:MAX_LINES]:
        lines.append(_line(e))
        if url := incident_url(context.public_url, e.incident_id):
            lines.append(f"  {url}")
    if len(events) > MAX_LINES:
        lines.append(f"… and {len(events) - MAX_LINES} more")
    return redact(title), redact("\n".join(lines))


def compose_html(events: list[IncidentEvent], context: Context | None = None) -> str:
    """The body as an HTML document (mail shows it, and derives its text part from it)."""
    context = context or Context()
    items = []
    for e in events[:MAX_LINES]:
        url = incident_url(context.public_url, e.incident_id)
        label = html.escape(redact(_line(e)))
        link = f'<br>\n<a href="{html.escape(url)}">{html.escape(url)}</a>' if url else ""
        items.append(f"<li>{label}{link}</li>")
    if len(events) > MAX_LINES:
        items.append(f"<li>… and {len(events) - MAX_LINES} more</li>")
    return "<html><body><ul>\n" + "\n".join(items) + "\n</ul></body></html>"


def _when(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _incident(incident_id: int, context: Context) -> dict[str, Any]:
    found = context.incidents.get(incident_id, {})
    return {"id": incident_id, "status": found.get("status"), "resolution": found.get("resolution"),
            "opened_at": _when(found.get("opened_at")), "resolved_at": _when(found.get("resolved_at")),
            "url": incident_url(context.public_url, incident_id)}


def _event(event: IncidentEvent, context: Context) -> dict[str, Any]:
    component = context.components.get(event.component_name or "", {})
    return {"event": event.kind, "state": state_of(event.kind), "at": event.at.isoformat(),
            "component": event.component_name, "component_state": component.get("state"),
            "labels": dict(component.get("labels") or {}), "reason": redact(event.reason) if event.reason else None,
            "resolution": event.resolution, "incident": _incident(event.incident_id, context)}


def document(events: list[IncidentEvent], context: Context, sent_at: datetime) -> dict[str, Any]:
    """The structured part of the webhook body (``title`` and ``body`` are added by the sender). Top-level
    ``component``, ``incident``, ``labels`` describe the message when it is about one of each (else null/{})."""
    items = [_event(e, context) for e in events[:MAX_LINES]]
    names = {e.component_name for e in events}
    incident_ids = sorted({e.incident_id for e in events})
    last = items[-1]
    one_component = len(names) == 1
    one_incident = len(incident_ids) == 1
    return {
        "version": DOCUMENT_VERSION,
        "event": events[0].kind if len(events) == 1 else "digest",
        "state": last["state"] if one_component else state_of(min(
            (e.kind for e in events), key=lambda k: URGENCY.index(k) if k in URGENCY else len(URGENCY))),
        "component": last["component"] if one_component else None,
        "labels": last["labels"] if one_component else {},
        "incident": last["incident"] if one_incident else None,
        "resolution": (last["resolution"] or last["incident"]["resolution"]) if one_incident else None,
        "links": {"incident": last["incident"]["url"] if one_incident else None,
                  "page": context.public_url},
        "sent_at": sent_at.isoformat(),
        "incidents": incident_ids,
        "events": items,
        "events_omitted": max(0, len(events) - MAX_LINES),
    }
