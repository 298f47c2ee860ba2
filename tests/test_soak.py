"""The randomized soak in CI (tests/soak.py; the long run is bench/soak.py): on each database two fixed
seeds and one random seed (in the test id, to run it again), SOAK_S seconds each, and not one violation
of the invariants I1-I7 (docs/guarantees.md). A failure prints the seed, the violations and the whole
operation log."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.soak import Soak

#: Seconds of walk per seed: with ~10 s of set-up and stop and the soak's JUDGE_S (12 s) of observation
#: after the walk, a seed takes ~30 s on a loaded 2-core machine, so a database's three ~80-90 s.
SOAK_S = 12.0
#: Calm seconds between two disturbances of the daemon (bench/soak.py waits 20 s).
CALM_BETWEEN_S = 8.0
#: A new seed per run, the same in every xdist worker of that run (workers must collect the same test ids).
RANDOM_SEED = (random.Random(os.environ["PYTEST_XDIST_TESTRUNUID"]) if "PYTEST_XDIST_TESTRUNUID" in os.environ
               else random.SystemRandom()).randrange(1_000, 1_000_000)
SEEDS = [pytest.param(7, id="seed7"), pytest.param(10, id="seed10"),
         pytest.param(RANDOM_SEED, id=f"seed{RANDOM_SEED}-random")]


@pytest.mark.slow
# one soak at a time, on one worker (--dist loadfile in pyproject.toml, as before xdist): each is a daemon,
# seven services and a walk of faults judged against fixed real-time windows (a hand fix racing an action:
# HAND_FIX_RACE_S); two at once beside the other workers stretched a decision past that window
@pytest.mark.timeout(240)  # set-up, walk, judging, a second daemon's refusal, a slow stop on a loaded machine
@pytest.mark.parametrize("seed", SEEDS)
def test_soak_keeps_every_invariant(db, db_url: str, tmp_path: Path, seed: int) -> None:
    lines: list[str] = []
    result = Soak(seed=seed, folder=tmp_path, db_url=db_url, duration_s=SOAK_S, calm_between_s=CALM_BETWEEN_S,
                  log=lines.append).run()
    print(result.report().splitlines()[0], f"(again: {result.walk_command()})")
    assert result.operations > 5, result.report()
    if result.violations:
        pytest.fail(result.report(), pytrace=False)
