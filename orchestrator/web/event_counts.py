"""Counters for ``/metrics`` derived from rows that are only ever appended: incident events, state transitions.

A Prometheus counter must never go backwards, so none of these is computed from a row's *current*
status (an incident moving from ``open`` to ``resolved`` would take one away from ``open``). Instead:

- incidents opened, reopened, escalated and resolved (by resolution) count ``incident_events`` rows,
  one written by :mod:`orchestrator.incidents.status` in the transaction of every status change, never
  updated in the columns counted (only ``notified_at``) and deleted only with their incident (never);
- transitions into each component state count ``state_transitions`` rows (kept forever; deleted only
  with their component, whose series then disappear with it), so an outage shorter than the scrape
  interval still moves ``orchestrator_component_transitions_total{state="down"}``, while the
  one-hot state gauge read at the two scrapes shows ``up`` both times.

Both are aggregates over tables that grow with history, so they are recomputed only when the tables'
fingerprint (row count and highest id, each an index-only read) moved, as the journal's figures are
(:mod:`orchestrator.web.journal_figures`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.core.states import Resolution
from orchestrator.db.models import IncidentEventRow, StateTransition
from orchestrator.web.journal_figures import FingerprintCache

#: incident event kinds served as their own counter (``orchestrator_incidents_<kind>_total``)
INCIDENT_KINDS = ("opened", "reopened", "escalated")
RESOLUTIONS = tuple(r.value for r in Resolution)


@dataclass(frozen=True)
class EventCounts:
    """Incident events by (kind, resolution) and state transitions by (component id, to state)."""

    incident_events: dict[tuple[str, str | None], int]
    transitions: dict[tuple[int, str], int]

    def incidents(self, kind: str) -> int:
        return sum(n for (k, _r), n in self.incident_events.items() if k == kind)

    def resolved(self) -> dict[str, int]:
        """Every resolution (zeros included) → incidents resolved with it."""
        counts = dict.fromkeys(RESOLUTIONS, 0)
        for (kind, resolution), n in self.incident_events.items():
            if kind == "resolved" and resolution is not None:
                counts[resolution] = counts.get(resolution, 0) + n
        return counts


def fingerprint(session: Session) -> tuple:
    """Row count and highest id of both tables: moves whenever a row is added or deleted."""
    events = session.execute(select(func.count(), func.max(IncidentEventRow.id))).one()
    transitions = session.execute(select(func.count(), func.max(StateTransition.id))).one()
    return tuple(events), tuple(transitions)


def event_counts(session: Session) -> EventCounts:
    """Both aggregates, from every row (two grouped statements)."""
    events = session.execute(select(IncidentEventRow.kind, IncidentEventRow.resolution, func.count())
                             .group_by(IncidentEventRow.kind, IncidentEventRow.resolution)).all()
    transitions = session.execute(select(StateTransition.component_id, StateTransition.to_state, func.count())
                                  .group_by(StateTransition.component_id, StateTransition.to_state)).all()
    return EventCounts({(k, r): int(n) for k, r, n in events}, {(c, s): int(n) for c, s, n in transitions})


class EventCountsCache(FingerprintCache[EventCounts]):
    """:func:`event_counts`, recomputed only when the tables' :func:`fingerprint` moved."""

    def __init__(self) -> None:
        super().__init__(fingerprint, event_counts)
