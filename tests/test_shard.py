"""Sharding components over check worker processes: stable, and even for ids in arithmetic patterns."""

from __future__ import annotations

from collections import Counter

import pytest

from orchestrator.health.procs import shard


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("step", [1, 2, 10])
def test_every_kth_component_spreads_over_every_worker(n: int, step: int) -> None:
    """Regression: ``id % n`` put every 10th component (the hanging ones) on one of two workers."""
    counts = Counter(shard(cid, n) for cid in range(step, 10_000 * step + 1, step))
    assert set(counts) == set(range(n))
    assert max(counts.values()) - min(counts.values()) < 0.02 * 10_000 / n


def test_a_component_always_goes_to_the_same_worker() -> None:
    assert [shard(cid, 3) for cid in range(100)] == [shard(cid, 3) for cid in range(100)]
    assert all(0 <= shard(cid, 5) < 5 for cid in range(1000))
