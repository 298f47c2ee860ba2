"""APScheduler 3 as the daemon's timer: a few fixed jobs, never one job per component, on monotonic time.

The jobs are registry sync, ping feed, heartbeat, retention, sentinels, notification flush and the
systemd watchdog (due checks are the dispatcher's own thread: orchestrator.health.dispatch). Each has a stable id,
``replace_existing``, ``max_instances=1`` (a slow sync is never run twice at once) and ``coalesce``
(a job that fell behind runs once, not in a burst). Check due times live in the dispatcher's heap.

APScheduler 3's BackgroundScheduler reads ``datetime.now()`` to decide which jobs are due and how long
to sleep: a wall clock stepped back by an hour stopped every job (checks, heartbeat, watchdog) for that
hour. :class:`MonotonicScheduler` keeps APScheduler (its executors, coalescing, max instances, events)
but runs it on a timeline anchored once: ``start_wall + (clock.monotonic() - start_mono)``. Its times
are never shown; wall time is only written down by the jobs themselves.

Protects invariant 7 (time, docs/guarantees.md): no wait, interval or due time of the timer may depend
on the wall clock — a step of the wall clock changes the timestamps the jobs write, nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from threading import TIMEOUT_MAX
from typing import Any

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobSubmissionEvent,
)
from apscheduler.executors.base import MaxInstancesReachedError
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_PAUSED
from apscheduler.triggers.interval import IntervalTrigger

from orchestrator.core.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

#: Threads for the timer's jobs: a sync or retention run may take a while.
TIMER_THREADS = 6


class MonotonicScheduler(BackgroundScheduler):
    """A BackgroundScheduler whose "now" is the monotonic clock, expressed as a datetime.

    Only ``_process_jobs`` (due jobs, the next wake-up) reads the time in APScheduler 3.11 once every
    job is added with an explicit ``next_run_time`` and ``misfire_grace_time=None`` (the executor's
    misfire check is the other wall-clock read); it is re-stated here with ``self.timeline_now()``,
    for the one memory job store and the executors the timer uses.
    """

    def __init__(self, *, clock: Clock, **options: Any) -> None:
        self._clock = clock
        self._anchor_wall = clock.now()
        self._anchor_mono = clock.monotonic()
        super().__init__(**options)

    def timeline_now(self) -> datetime:
        """Wall time at construction plus monotonic seconds since: moves with the monotonic clock only."""
        return self._anchor_wall + timedelta(seconds=self._clock.monotonic() - self._anchor_mono)

    def _process_jobs(self) -> float | None:
        if self.state == STATE_PAUSED:
            return None
        now = self.timeline_now()
        next_wakeup: datetime | None = None
        events: list[JobSubmissionEvent] = []
        with self._jobstores_lock:
            for alias, store in self._jobstores.items():
                for job in store.get_due_jobs(now):
                    self._submit(job, alias, store, now, events)
                store_next = store.get_next_run_time()
                if store_next is not None and (next_wakeup is None or store_next < next_wakeup):
                    next_wakeup = store_next
        for event in events:
            self._dispatch_event(event)
        if next_wakeup is None:
            return None
        return min(max((next_wakeup - self.timeline_now()).total_seconds(), 0.0), TIMEOUT_MAX)

    def _submit(self, job, alias: str, store, now: datetime, events: list[JobSubmissionEvent]) -> None:
        run_times = job._get_run_times(now)
        run_times = run_times[-1:] if run_times and job.coalesce else run_times
        if not run_times:
            return
        try:
            self._lookup_executor(job.executor).submit_job(job, run_times)
        except MaxInstancesReachedError:
            events.append(JobSubmissionEvent(EVENT_JOB_MAX_INSTANCES, job.id, alias, run_times))
        except BaseException:
            log.exception("could not submit timer job %s", job.id)
        else:
            events.append(JobSubmissionEvent(EVENT_JOB_SUBMITTED, job.id, alias, run_times))
        following = job.trigger.get_next_fire_time(run_times[-1], now)
        if following is not None:
            job._modify(next_run_time=following)
            store.update_job(job)
        else:
            self.remove_job(job.id, alias)


class Timer:
    """A thin facade over the scheduler so the daemon speaks in seconds and job names."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        #: job runs skipped because the previous run of the same job was still going
        self.skipped_runs = 0
        self._scheduler = MonotonicScheduler(
            clock=clock,
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
        """Run ``fn`` every ``interval_s``, the first time after ``first_delay_s`` (monotonic seconds)."""
        first = self._scheduler.timeline_now() + timedelta(seconds=first_delay_s)
        self._scheduler.add_job(fn, IntervalTrigger(seconds=interval_s, start_date=first, timezone=UTC),
                                id=job_id, name=job_id, replace_existing=True, next_run_time=first)

    def job_ids(self) -> list[str]:
        return [job.id for job in self._scheduler.get_jobs()]
