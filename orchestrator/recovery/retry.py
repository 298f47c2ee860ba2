"""When to try again: between attempts of a step, after a run that failed, after a quick re-failure.

Pure: history and settings in, seconds out. The executor and the coordinator decide what to do with
the delay (wait in place, or put it in ``incidents.next_attempt_at`` and let the loop come back).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.core.states import Resolution
from orchestrator.plans import CrashLoop, Step
from orchestrator.resilience.backoff import equal_jitter_delay, full_jitter_delay

#: A run that raised (a bug, a lost database) is tried again after equal-jitter backoff from ...
RUN_ERROR_BASE_S = 1.0
#: ... up to this long.
RUN_ERROR_CAP_S = 60.0


class RetryPolicy:
    """The attempts of one step: how many, and the full-jitter backoff before each retry."""

    def __init__(self, step: Step, rng: random.Random) -> None:
        self.step, self.rng = step, rng

    def next_delay_s(self, failed_attempts: int) -> float | None:
        """Seconds before the next attempt after ``failed_attempts`` of this run failed; None when the
        step has no attempts left."""
        if failed_attempts >= self.step.attempts:
            return None
        backoff = self.step.backoff
        return full_jitter_delay(failed_attempts, backoff.base_s, backoff.cap_s, self.rng)


def run_error_delay_s(failures: int, rng: random.Random) -> float:
    """Seconds before a run that raised ``failures`` times in a row is picked up again."""
    return equal_jitter_delay(max(1, failures), RUN_ERROR_BASE_S, RUN_ERROR_CAP_S, rng)


@dataclass(frozen=True)
class PastIncident:
    """An earlier incident of the same component."""

    opened_at: datetime
    resolved_at: datetime | None
    resolution: str | None


def crash_loop_streak(opened_at: datetime, history: Sequence[PastIncident], config: CrashLoop) -> int:
    """Verified recoveries in the component's current fail-recover streak, newest first in ``history``.

    The streak goes back while each failure came within ``reset_after`` of the incident before it
    closing; a longer healthy period ends it (as Kubernetes resets its restart backoff)."""
    streak, later_opened = 0, opened_at
    for past in history:
        if past.resolved_at is None or later_opened - past.resolved_at > timedelta(seconds=config.reset_after_s):
            break
        streak += past.resolution == Resolution.AUTO.value
        later_opened = past.opened_at
    return streak


def crash_loop_delay_s(opened_at: datetime, history: Sequence[PastIncident], config: CrashLoop) -> float:
    """Seconds to wait after ``opened_at`` before the incident's first action: 0 for a first failure,
    then ``base`` doubling per verified recovery in the streak, at most ``cap``."""
    streak = crash_loop_streak(opened_at, history, config)
    return 0.0 if streak == 0 else min(config.cap_s, config.base_s * 2 ** (streak - 1))


def cycling(now: datetime, opened: Sequence[datetime], config: CrashLoop) -> bool:
    """True when the component opened ``flap_incidents`` incidents (this one included) within
    ``reset_after``: fail-recover cycles make it flapping, whatever its check results say."""
    since = now - timedelta(seconds=config.reset_after_s)
    return sum(1 for at in opened if at >= since) >= config.flap_incidents
