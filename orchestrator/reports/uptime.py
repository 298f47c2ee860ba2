"""Uptime from the state timeline: how long each component spent in each state within a window.

Uptime % is ``(up + degraded) / (up + degraded + down + flapping)``: only time the orchestrator could judge counts. Time spent
``unknown`` (not checked yet), ``paused`` or in ``maintenance`` is left out of the denominator, so a
planned maintenance does not lower uptime and a component never checked has no uptime (``None``).
Nor is the time after a component's last check (plus a grace period) while no daemon watched it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, func, literal, select, union_all
from sqlalchemy.orm import Session

from orchestrator.core.states import ComponentState
from orchestrator.db.models import StateTransition
from orchestrator.reports.charts import Segment

#: states that count towards uptime's denominator; UP and DEGRADED (answering) count as available
JUDGED_STATES = frozenset({ComponentState.UP, ComponentState.DEGRADED, ComponentState.DOWN, ComponentState.FLAPPING})
#: a state is current for this many check intervals after the last check, plus STALE_GRACE_S for
#: batched writes (last_check_at is written when the recorder flushes)
STALE_AFTER_INTERVALS = 3
STALE_GRACE_S = 10.0


@dataclass(frozen=True)
class StateTimes:
    """Seconds spent in each component state within the window."""

    up_s: float = 0.0
    degraded_s: float = 0.0
    down_s: float = 0.0
    flapping_s: float = 0.0
    unknown_s: float = 0.0
    paused_s: float = 0.0
    maintenance_s: float = 0.0

    @property
    def uptime_pct(self) -> float | None:
        judged_s = sum(getattr(self, f"{state.value}_s") for state in JUDGED_STATES)
        return None if judged_s <= 0 else 100.0 * (self.up_s + self.degraded_s) / judged_s


@dataclass(frozen=True)
class Change:
    """One transition as the timeline needs it."""

    at: datetime
    from_state: str
    to_state: str


def segments(initial: str, changes: Iterable[Change], start: datetime, end: datetime) -> list[Segment]:
    """``[start, end)`` as consecutive (state, from, to) pieces: ``initial`` holds at ``start``, then each
    change applies. Changes must be in time order; ones before ``start`` or after ``end`` are clipped away,
    and empty pieces are left out.
    """
    out: list[Segment] = []
    state, since = _known(initial), start
    for change in changes:
        at = min(max(change.at, start), end)
        if at > since:
            out.append(Segment(since, at, state))
        state, since = _known(change.to_state), max(since, at)
    if end > since:
        out.append(Segment(since, end, state))
    return out


def time_in_states(initial: str, changes: Iterable[Change], start: datetime, end: datetime) -> StateTimes:
    """Seconds in each state within ``[start, end)`` (see :func:`segments`)."""
    return times_of(segments(initial, changes, start, end))


def _known(state: str) -> str:
    # a state written by a newer version is not judged rather than breaking the report
    return state if state in {s.value for s in ComponentState} else ComponentState.UNKNOWN.value


def load_timelines(session: Session, start: datetime,
                   component_ids: Collection[int] | None) -> dict[int, tuple[str | None, list[Change]]]:
    """component id → (state at ``start`` if a transition before it says so, the changes from ``start``).

    One statement: the newest transition before the window per component (a window function, served by
    ix_state_transitions_component_id_at) united with every transition inside it.
    """
    rank = func.row_number().over(partition_by=StateTransition.component_id,
                                  order_by=(StateTransition.at.desc(), StateTransition.id.desc()))
    before = select(StateTransition.component_id, StateTransition.at, StateTransition.from_state,
                    StateTransition.to_state, StateTransition.id, rank.label("rn")).where(StateTransition.at < start)
    inside = select(StateTransition.component_id, StateTransition.at, StateTransition.from_state,
                    StateTransition.to_state, StateTransition.id, literal(0, Integer).label("rn")
                    ).where(StateTransition.at >= start)
    if component_ids is not None:
        before = before.where(StateTransition.component_id.in_(list(component_ids)))
        inside = inside.where(StateTransition.component_id.in_(list(component_ids)))
    ranked = before.subquery()
    latest_before = select(ranked).where(ranked.c.rn == 1)
    both = union_all(latest_before, inside).subquery()
    rows = session.execute(select(both).order_by(both.c.component_id, both.c.at, both.c.id))
    out: dict[int, tuple[str | None, list[Change]]] = {}
    for cid, at, from_state, to_state, _id, rn in rows:
        _prior, changes = out.setdefault(cid, (None, []))
        if rn == 1:
            out[cid] = (to_state, changes)
        else:
            changes.append(Change(at, from_state, to_state))
    return out


def watched_until(last_check_at: datetime | None, interval_s: float) -> datetime | None:
    """When the component's recorded state stopped being current: its last check plus a grace period.

    A stopped daemon leaves each component's last state behind; the time after it is not judged."""
    if last_check_at is None:
        return None
    return last_check_at + timedelta(seconds=STALE_AFTER_INTERVALS * interval_s + STALE_GRACE_S)


def component_segments(timeline: tuple[str | None, list[Change]] | None, current_state: str, created_at: datetime,
                       start: datetime, end: datetime, stale_from: datetime | None = None) -> list[Segment]:
    """One component's states over the window, as consecutive segments.

    Before its first known transition it was in that one's ``from_state``; with no transitions at all,
    in its current state since it was registered. From ``stale_from`` (see :func:`watched_until`) on,
    it is ``unknown`` until a later transition says otherwise. Time before registration is left out.
    """
    prior, changes = timeline or (None, [])
    initial = prior or (changes[0].from_state if changes else current_state)
    if stale_from is not None and stale_from < end:
        stale = Change(stale_from, "", ComponentState.UNKNOWN.value)
        changes = sorted([*changes, stale], key=lambda c: c.at)
    return segments(initial, changes, max(start, created_at), end)


def times_of(pieces: Iterable[Segment]) -> StateTimes:
    """Seconds in each state over the given segments."""
    totals = dict.fromkeys((s.value for s in ComponentState), 0.0)
    for seg in pieces:
        totals[seg.state] += (seg.end - seg.start).total_seconds()
    return StateTimes(**{f"{name}_s": seconds for name, seconds in totals.items()})


def component_times(timeline: tuple[str | None, list[Change]] | None, current_state: str, created_at: datetime,
                    start: datetime, end: datetime, stale_from: datetime | None = None) -> StateTimes:
    """Time in states for one component (see :func:`component_segments`)."""
    return times_of(component_segments(timeline, current_state, created_at, start, end, stale_from))
