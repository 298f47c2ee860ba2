"""Registry sync: the database's components, turned into messages for the judge.

Called at start and every couple of seconds (and on SIGHUP). Cheap when nothing changed (one
aggregate query); otherwise one narrow query over every component (id, generation, holds) and full
rows only for the new and changed ones, so adding 1,000 components to 10,000 loads 1,000 rows.
Added, changed and removed components and operator holds reach the trackers only through the
judge's queue (the judge owns them); a pause that expires needs no registry change, so while any
component is held the narrow query runs every time.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.components.targets import effective_check
from orchestrator.components.windows import Cover, Window, WindowKind, covered_ids, load_windows, open_windows
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.states import ComponentState
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, PushPing
from orchestrator.db.watch import DatabaseWatch
from orchestrator.degradation.early_warning import EarlyWarningSettings, Evidence, seed_minutes, settings_from
from orchestrator.health.judge import Hold, Install, Judge, Remove
from orchestrator.health.tracker import TrackerConfig
from orchestrator.history.recorder import LiveState
from orchestrator.history.rollup import recent_p50s

log = logging.getLogger(__name__)

#: Full rows loaded per query (bounded IN lists).
LOAD_CHUNK = 500
#: Per-component log lines for a sync that changes at most this many; a summary line beyond it.
LOG_EACH_UP_TO = 20


@dataclass(frozen=True, slots=True)
class SyncSummary:
    added: int = 0
    changed: int = 0
    removed: int = 0


class RegistrySync:
    """Mirrors the registry into the judge. Thread-safe (the timer and SIGHUP may overlap)."""

    def __init__(self, db: Database, judge: Judge, *, clock: Clock = SYSTEM_CLOCK, startup_grace_s: float = 0.0) -> None:
        self.db = db
        self.judge = judge
        self.clock = clock
        self.startup_grace_s = startup_grace_s
        self._generations: dict[int, int] = {}  # what the judge was last sent, by component id
        self._names: dict[int, str] = {}
        self._intervals: dict[int, float] = {}
        self._holds: dict[int, ComponentState | None] = {}
        self._fingerprint: tuple | None = None
        self._lock = threading.Lock()
        self._db_watch = DatabaseWatch(log, "registry sync", clock=self.clock)

    @property
    def components(self) -> int:
        return len(self._generations)

    def rate(self) -> float:
        """Checks per second the registered components ask for."""
        return sum(1.0 / interval for interval in list(self._intervals.values()))

    def sync(self) -> SyncSummary | None:
        """Bring the judge in line with the registry; None when the database could not be read."""
        with self._lock:
            try:
                summary = self._sync()
            except Exception as exc:  # the database may be away: keep running what we have
                self._db_watch.failed(exc)  # one line when it goes and one when it is back, not one a sync
                return None
            self._db_watch.ok()
            return summary

    def _sync(self) -> SyncSummary:
        now = self.clock.now()
        with self.db.read() as session:
            # max(created_at): a removal and an add between two syncs that leave the count, the highest id
            # and the generations' sum as they were (SQLite gives the removed highest id to the next row)
            fingerprint = tuple(session.execute(select(
                func.count(Component.id), func.coalesce(func.sum(Component.generation), 0),
                func.coalesce(func.max(Component.id), 0), func.max(Component.created_at))).one())
            open_now = open_windows(load_windows(session, WindowKind.MAINTENANCE), now)
            if fingerprint == self._fingerprint and not any(self._holds.values()) and not open_now:
                return SyncSummary()
            light = session.execute(select(Component.id, Component.name, Component.generation, Component.paused_until,
                                           Component.paused_reason, Component.maintenance_until)).all()
            covered = covered_ids(session, open_now)
            # the same id under another name is another component (SQLite reuses the highest id of a removed
            # row): the old one is removed, the new one added, nothing of the old tracker carried over
            replaced = [r.id for r in light if r.id in self._names and self._names[r.id] != r.name]
            for cid in replaced:
                self._forget(cid, log_it=True)
            changed = [r.id for r in light if self._generations.get(r.id) != r.generation]
            rows = [row for i in range(0, len(changed), LOAD_CHUNK)
                    for row in session.scalars(select(Component).where(Component.id.in_(changed[i:i + LOAD_CHUNK])))]
            settings = {row.id: self._early_warning(row) for row in rows}
            seeds = _baseline_seeds(session, [r for r in rows if r.id not in self._generations], settings, now)
            pushed = _last_successes(session, [r.id for r in rows if r.check_kind == "push"])
        added = sum(1 for row in rows if row.id not in self._generations)
        for row in rows:
            self._install(row, len(rows) <= LOG_EACH_UP_TO, settings[row.id], seeds.get(row.id, Evidence()),
                          pushed.get(row.id))
        for r in light:
            self._hold(r, now, covered.get(r.id))
        seen = {r.id for r in light}
        removed = [cid for cid in self._generations if cid not in seen]
        for cid in removed:
            self._forget(cid, log_it=len(removed) <= LOG_EACH_UP_TO)
        self._fingerprint = fingerprint
        summary = SyncSummary(added, len(rows) - added, len(removed) + len(replaced))
        if len(rows) > LOG_EACH_UP_TO or len(removed) > LOG_EACH_UP_TO:
            log.info("registry sync: added=%d changed=%d removed=%d components=%d", summary.added,
                     summary.changed, summary.removed, len(self._generations))
        return summary

    def _forget(self, cid: int, *, log_it: bool) -> None:
        """The component ``cid`` is gone: out of the judge (its tracker, schedule and pending writes)."""
        self._generations.pop(cid, None)
        self._holds.pop(cid, None)
        self.judge.send(Remove(cid))
        name = self._names.pop(cid, cid)
        self._intervals.pop(cid, None)
        if log_it:
            log.info("component removed component=%s", name)

    def _early_warning(self, row: Component) -> EarlyWarningSettings:
        try:
            return settings_from(row.early_warning)
        except ValueError as exc:  # stored by hand or by another version: judge by the defaults
            log.warning("early_warning overrides ignored component=%s: %s", row.name, exc)
            return EarlyWarningSettings()

    def _install(self, row: Component, log_it: bool, early_warning: EarlyWarningSettings, seed: Evidence,
                 last_success: datetime | None = None) -> None:
        config = TrackerConfig(interval_s=row.interval_s, failure_threshold=row.failure_threshold,
                               success_threshold=row.success_threshold, retry_interval_s=row.retry_interval_s,
                               down_backoff_cap_s=row.max_probe_interval_s,
                               startup_grace_s=self.startup_grace_s, timeout_s=row.timeout_s,
                               early_warning=early_warning)
        restore = LiveState(ComponentState(row.state), row.state_since, row.consecutive_failures,
                            row.consecutive_successes, row.flap_episode)
        if log_it:
            kind = "added" if row.id not in self._generations else "changed"
            log.info("component %s component=%s interval=%gs", kind, row.name, row.interval_s)
        soon = self._fingerprint is not None and row.id not in self._generations  # added while running
        self.judge.send(Install(row.id, row.name, effective_check(row), config, row.timeout_s,
                                row.criticality or "normal", restore, seed, soon, last_success))
        self._generations[row.id] = row.generation
        self._names[row.id] = row.name
        self._intervals[row.id] = row.interval_s

    def _hold(self, light, now, window: tuple[Window, datetime] | None) -> None:
        hold = Component.hold_at(light, now)  # the one definition of a hold, on the narrow row
        by_window = hold is None and window is not None  # an open maintenance window over it
        wanted = ComponentState.MAINTENANCE if by_window else None if hold is None else ComponentState(hold)
        if self._holds.get(light.id) is not wanted:
            self._holds[light.id] = wanted
            reason = (light.paused_reason or "") if wanted is ComponentState.PAUSED else ""
            if by_window:
                reason = Cover(maintenance=window).hold_reason()
            self.judge.send(Hold(light.id, wanted, reason))


def _last_successes(session: Session, ids: list[int]) -> dict[int, datetime]:
    """Each push monitor's last success ping (its next one is expected after it)."""
    out: dict[int, datetime] = {}
    for i in range(0, len(ids), LOAD_CHUNK):
        out.update(session.execute(
            select(PushPing.component_id, func.max(PushPing.received_at))
            .where(PushPing.component_id.in_(ids[i:i + LOAD_CHUNK]), PushPing.kind == "success")
            .group_by(PushPing.component_id)).all())
    return out


#: states whose minutes (since the state began) do not count towards a baseline seed
_NOT_BASELINE = frozenset({ComponentState.DEGRADED.value, ComponentState.DOWN.value, ComponentState.FLAPPING.value})


def _baseline_seeds(session: Session, rows: list[Component], settings: dict[int, EarlyWarningSettings],
                    now: datetime) -> dict[int, Evidence]:
    """The early warning's baseline for components new to this process, from their per-minute rollups:
    minutes with a failure are left out, and so are those since the component became degraded, down
    or flapping (a slow period must not raise its own baseline; the median takes care of the rest)."""
    if not rows:
        return {}
    minutes = max(settings[r.id].baseline_minutes for r in rows)
    found = recent_p50s(session, [r.id for r in rows], now - timedelta(minutes=minutes))
    seeds = {}
    for row in rows:
        cutoff = row.state_since.replace(second=0, microsecond=0) if row.state in _NOT_BASELINE and row.state_since \
            else None
        kept = [p50 for minute, p50 in found.get(row.id, ()) if cutoff is None or minute < cutoff]
        if kept:
            seeds[row.id] = seed_minutes(kept[-settings[row.id].baseline_minutes:])
    return seeds
