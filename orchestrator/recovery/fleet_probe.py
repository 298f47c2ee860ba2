"""Look around before acting at once: is this failure the component's own?

The settle window (``limits.settle``) lets failures that happen together be judged together by the
blast-radius and dependency guards. Most failures are one component's own, and waiting then only delays
the fix. So before waiting, the coordinator checks the component's dependencies and a random sample of
the rest of the fleet, all at once: healthy endpoints answer in milliseconds. When every dependency
answers and at most a quarter of the sample fails, nothing is shared and the run acts without waiting.
Anything else (a dependency fails, too much of the sample fails) waits the full settle window; while
the sample keeps failing widely the coordinator waits again (bounded), so that under load the trackers
have time to mark the fleet DOWN and the blast-radius guard to trip before anything acts.
"""

from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from sqlalchemy import select

from orchestrator.db.engine import Database
from orchestrator.db.models import Component, ComponentDependency
from orchestrator.health.checkers import get_checker
from orchestrator.health.spec import CheckSpec
from orchestrator.recovery.targets import effective_check

log = logging.getLogger("orchestrator.recovery")

#: other components probed; enough to see a fleet-wide fault, cheap enough to do per incident
SAMPLE_SIZE = 20
#: a probe never waits longer than this, whatever the component's own timeout
MAX_PROBE_TIMEOUT_S = 1.0
#: the share of the sample that may fail while the failure still counts as the component's own
TOLERATED_FAILURES = 0.25


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


def probe_fleet(db: Database, component_id: int, rng: random.Random) -> FleetProbe:
    """Check the component's dependencies and a random sample of the others, all at once."""
    with db.read() as session:
        dep_ids = set(session.scalars(select(ComponentDependency.depends_on_id)
                                      .where(ComponentDependency.component_id == component_id)))
        others = [cid for cid in session.scalars(select(Component.id)) if cid != component_id]
        sample = rng.sample([c for c in others if c not in dep_ids], min(SAMPLE_SIZE, len(others) - len(dep_ids)))
        rows = session.scalars(select(Component).where(Component.id.in_(dep_ids | set(sample)))).all()
        targets = {row.id: (effective_check(row), min(row.timeout_s, MAX_PROBE_TIMEOUT_S)) for row in rows}
    if not targets:
        return FleetProbe(0, 0, 0.0)
    results = _probe_all(targets, [cid for cid in dep_ids if cid in targets], [cid for cid in sample if cid in targets])
    failed_deps = [cid for cid in dep_ids if results.get(cid) is False]
    answered = [results[cid] for cid in sample if cid in results]
    # probes still out when the verdict was clear count as failures: that never makes it look isolated
    sampled = answered + [False] * (len([c for c in sample if c in targets]) - len(answered))
    failed_share = sampled.count(False) / len(sampled) if sampled else 0.0
    probe = FleetProbe(len(failed_deps), len(sampled), failed_share)
    log.info("fleet probe component_id=%d dependencies_failed=%d sample=%d sample_failed=%.0f%% -> %s",
             component_id, len(failed_deps), len(sampled), failed_share * 100,
             "acting now" if probe.isolated else "settling first")
    return probe


def _probe_all(targets: dict[int, tuple[CheckSpec, float]], deps: list[int], sample: list[int]) -> dict[int, bool]:
    """Probe every target at once; return as soon as the failure is clearly the component's own (every
    dependency answered and enough of the sample did), without waiting for a hanging straggler."""
    needed_ok = len(sample) - int(TOLERATED_FAILURES * len(sample))
    pool = ThreadPoolExecutor(max_workers=min(len(targets), SAMPLE_SIZE + 4), thread_name_prefix="probe")
    futures = {pool.submit(_ok, *target): cid for cid, target in targets.items()}
    results: dict[int, bool] = {}
    try:
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            deps_ok = all(results.get(d) is True for d in deps)
            if deps_ok and sum(results.get(c) is True for c in sample) >= needed_ok:
                break
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a straggler ends within its own timeout
    return results


def _ok(spec: CheckSpec, timeout_s: float) -> bool:
    return get_checker(spec.kind).check(spec, timeout_s=timeout_s).ok
