"""Look around before acting at once: is this failure the component's own?

The settle window (``limits.settle``) lets failures that happen together be judged together by the
blast-radius and dependency guards. Most failures are one component's own, and waiting then only delays
the fix. So before waiting, the coordinator checks the component's dependencies and a random sample of
the rest of the fleet, all at once: healthy endpoints answer in milliseconds. When every dependency
answers and at most a quarter of the sample fails, nothing is shared and the run acts without waiting.
Anything else (a dependency fails, too much of the sample fails) waits the full settle window; while
the sample keeps failing widely the coordinator waits again (bounded), so that under load the trackers
have time to mark the fleet DOWN and the blast-radius guard to trip before anything acts. One sample
serves every incident of a burst for a second (:class:`FleetLook`): twenty failures at once cost one
look around, not twenty, and the probe returns as soon as the verdict is clear.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from sqlalchemy import select

from orchestrator.components.targets import effective_check
from orchestrator.core.check_spec import CheckSpec
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, ComponentDependency
from orchestrator.health.checkers import get_checker

log = logging.getLogger("orchestrator.recovery")

#: other components probed; enough to see a fleet-wide fault, cheap enough to do per incident
SAMPLE_SIZE = 20
#: a probe never waits longer than this, whatever the component's own timeout
MAX_PROBE_TIMEOUT_S = 1.0
#: the share of the sample that may fail while the failure still counts as the component's own
TOLERATED_FAILURES = 0.25
#: seconds one sample of the fleet serves every incident that asks (a burst of failures probes once)
SAMPLE_TTL_S = 1.0


@dataclass(frozen=True)
class FleetProbe:
    failed_dependencies: int
    sampled: int
    failed_share: float

    @property
    def isolated(self) -> bool:
        """The failure is the component's own: its dependencies answer and the sample is healthy."""
        return not self.failed_dependencies and not self.widespread

    @property
    def widespread(self) -> bool:
        """More of the sampled fleet fails than one component's failure explains."""
        return self.failed_share > TOLERATED_FAILURES


def looks_isolated(db: Database, component_id: int, rng: random.Random) -> bool:
    """True when the component's dependencies answer and the sampled fleet is healthy."""
    return probe_fleet(db, component_id, rng).isolated


def probe_fleet(db: Database, component_id: int, rng: random.Random, look: FleetLook | None = None) -> FleetProbe:
    """Check the component's dependencies and a random sample of the others, all at once. With
    ``look``, a sample probed less than SAMPLE_TTL_S ago is reused (a burst of failures costs one)."""
    with db.read() as session:
        dep_ids = set(session.scalars(select(ComponentDependency.depends_on_id)
                                      .where(ComponentDependency.component_id == component_id)))
    sample = (look or FleetLook()).sample(db, rng)
    deps = _probe_all(_targets(db, dep_ids)) if dep_ids else {}
    failed_deps = [cid for cid in dep_ids if deps.get(cid) is not True]
    # a probe still out counts as failed: that never makes a failure look like the component's own
    sampled = [ok is True for cid, ok in sample.items() if cid != component_id and cid not in dep_ids]
    failed_share = sampled.count(False) / len(sampled) if sampled else 0.0
    probe = FleetProbe(len(failed_deps), len(sampled), failed_share)
    log.info("fleet probe component_id=%d dependencies_failed=%d sample=%d sample_failed=%.0f%% -> %s",
             component_id, len(failed_deps), len(sampled), failed_share * 100,
             "acting now" if probe.isolated else "settling first")
    return probe


class FleetLook:
    """The fleet sample's answers, shared by the incidents of a burst for SAMPLE_TTL_S (thread-safe:
    callers arriving while a probe runs wait for it instead of probing again)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at = -SAMPLE_TTL_S
        self._results: dict[int, bool | None] = {}

    def sample(self, db: Database, rng: random.Random) -> dict[int, bool | None]:
        """Component id → answered healthy (None: still out), for a random sample of the fleet."""
        with self._lock:
            if time.monotonic() - self._at < SAMPLE_TTL_S:  # real time: it bounds real probes' age
                return self._results
            with db.read() as session:
                ids = list(session.scalars(select(Component.id)))
            chosen = rng.sample(ids, min(SAMPLE_SIZE + 1, len(ids)))  # one spare: the asking component
            # enough healthy answers that, whoever asks (and is left out), at most the tolerated share
            # failed or is still out: the verdict "its own failure" holds for every asker
            needed = len(chosen) - int(TOLERATED_FAILURES * (len(chosen) - 1))
            self._results = _probe_all(_targets(db, set(chosen)), needed)
            self._at = time.monotonic()
            return self._results


def _targets(db: Database, ids: set[int]) -> dict[int, tuple[CheckSpec, float]]:
    with db.read() as session:
        rows = session.scalars(select(Component).where(Component.id.in_(ids))).all()
        return {row.id: (effective_check(row), min(row.timeout_s, MAX_PROBE_TIMEOUT_S)) for row in rows}


def _probe_all(targets: dict[int, tuple[CheckSpec, float]], needed_ok: int | None = None) -> dict[int, bool | None]:
    """Probe every target at once (each bounded by its own timeout, at most MAX_PROBE_TIMEOUT_S).
    With ``needed_ok``, return as soon as that many answered healthy: the rest are None (still out),
    so a hanging straggler does not hold up a verdict that is already clear."""
    if not targets:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(len(targets), SAMPLE_SIZE + 4), thread_name_prefix="probe")
    futures = {pool.submit(_ok, *target): cid for cid, target in targets.items()}
    results: dict[int, bool | None] = dict.fromkeys(targets)
    try:
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if needed_ok is not None and sum(1 for ok in results.values() if ok) >= needed_ok:
                break
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a straggler ends within its own timeout
    return results


def _ok(spec: CheckSpec, timeout_s: float) -> bool:
    return get_checker(spec.kind).check(spec, timeout_s=timeout_s).ok
