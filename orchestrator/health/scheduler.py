"""APScheduler 3 as the daemon's timer: a few fixed jobs, never one job per component.

The jobs are the dispatch tick (every ``DISPATCH_TICK_S``: pops the due checks), registry sync,
heartbeat, retention, sentinels, notification flush and the systemd watchdog. Each has a stable id,
``replace_existing``, ``max_instances=1`` (a slow sync is never run twice at once) and ``coalesce``
(a job that fell behind runs once, not in a burst). Check due times live in the dispatcher's heap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from orchestrator.core.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

#: Threads for the timer's jobs: the tick, and a sync or retention run that may take a while.
TIMER_THREADS = 6


class Timer:
    """A thin facade over BackgroundScheduler so the daemon speaks in seconds and job names."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        #: job runs skipped because the previous run of the same job was still going
        self.skipped_runs = 0
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=TIMER_THREADS)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._scheduler.add_listener(self._count_skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)

    def start(self) -> None:
        self._scheduler.start()

    def _count_skipped(self, _event: object) -> None:
        self.skipped_runs += 1

    def shutdown(self, wait: bool) -> None:
        """Stop the timer; with ``wait``, return once every running job has finished."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)

    @property
    def running(self) -> bool:
        return self._scheduler.running

    def add_periodic(self, job_id: str, fn: Callable[[], Any], interval_s: float, *, first_delay_s: float = 0.0) -> None:
        """Run ``fn`` every ``interval_s``, the first time after ``first_delay_s``."""
        first = self.clock.now() + timedelta(seconds=first_delay_s)
        self._scheduler.add_job(fn, IntervalTrigger(seconds=interval_s, start_date=first, timezone=UTC),
                                id=job_id, name=job_id, replace_existing=True)

    def job_ids(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]
