"""APScheduler 3 wiring: one interval job per component, stable ids, never two runs of one check at once.

Jobs are ``check:<name>`` with ``replace_existing``, ``max_instances=1`` (a slow check is never run twice
at once) and ``coalesce`` (a check that fell behind runs once, not in a burst). Each component's first
run is spread over its interval so a restart does not fire every check at the same instant.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

#: a hanging endpoint holds a worker for its whole timeout: size the pool for that, within bounds
MIN_WORKERS = 16
MAX_WORKERS = 512
#: the share of checks we plan to be hanging at once when sizing the pool
HANG_SHARE = 0.25


def pool_size(checks_per_s: float, max_timeout_s: float) -> int:
    """Workers for ``checks_per_s`` when up to HANG_SHARE of them may each hold a worker for a timeout."""
    busy = checks_per_s * max_timeout_s * HANG_SHARE + checks_per_s * 0.05  # + the fast ones in flight
    return max(MIN_WORKERS, min(MAX_WORKERS, math.ceil(busy) + 8))


class _CheckPool(ThreadPoolExecutor):
    """APScheduler's thread pool, except that shutdown drops the checks still queued.

    A queued check never started, so dropping it loses nothing; waiting for it would keep an overloaded
    daemon from stopping for minutes. Only the checks already running are waited for, each bounded by
    its own timeout. (APScheduler's own completion callback cannot take a cancelled future, hence the
    copy of its submit with one more case.)
    """

    def _do_submit_job(self, job, run_times):
        def done(future):
            if future.cancelled():
                self._run_job_success(job.id, [])
                return
            exc = future.exception()
            if exc is not None:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        future = self._pool.submit(run_job, job, job._jobstore_alias, run_times, self._logger.name)
        future.add_done_callback(done)

    def shutdown(self, wait=True):
        self._pool.shutdown(wait=wait, cancel_futures=True)


def check_job_id(name: str) -> str:
    return f"check:{name}"


class CheckScheduler:
    """A thin facade over BackgroundScheduler so the rest of the daemon speaks in seconds and names."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        # APScheduler's shutdown(wait=True) holds its job-store lock while it waits for running jobs,
        # and a running check may want to move its next run (modify_job needs that lock): a deadlock.
        # Checks reschedule only under this lock, and never once stopping has begun.
        self._lock = threading.Lock()
        self._stopping = False
        #: runs skipped because the previous run of the same check was still going (falling behind)
        self.skipped_runs = 0
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": _CheckPool(max_workers=workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._scheduler.add_listener(self._count_skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)

    def start(self, paused: bool = False) -> None:
        """Start; ``paused`` gives added jobs their run times now but runs nothing until resume()."""
        self._scheduler.start(paused=paused)

    def resume(self) -> None:
        self._scheduler.resume()

    def _count_skipped(self, _event) -> None:
        self.skipped_runs += 1

    def shutdown(self, wait: bool) -> None:
        """Stop scheduling; with ``wait``, return once every running job has finished."""
        with self._lock:
            self._stopping = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)

    @property
    def running(self) -> bool:
        return self._scheduler.running

    def schedule_check(self, name: str, fn: Callable[..., Any], args: list[Any], *, interval_s: float,
                       first_delay_s: float) -> datetime:
        """(Re)schedule a component's check every ``interval_s``, the first after ``first_delay_s``."""
        first = datetime.now(UTC) + timedelta(seconds=first_delay_s)
        job = self._scheduler.add_job(fn, IntervalTrigger(seconds=interval_s, start_date=first, timezone=UTC),
                                      id=check_job_id(name), name=check_job_id(name), args=args,
                                      replace_existing=True)
        return getattr(job, "next_run_time", None) or first

    def run_check_after(self, name: str, delay_s: float) -> datetime:
        """Move the next check of ``name`` to ``delay_s`` from now (retry interval, DOWN backoff)."""
        at = datetime.now(UTC) + timedelta(seconds=delay_s)
        with self._lock:
            if self._stopping:
                return at
            try:
                self._scheduler.modify_job(check_job_id(name), next_run_time=at)
            except JobLookupError:
                pass  # removed meanwhile
        return at

    def unschedule_check(self, name: str) -> None:
        try:
            self._scheduler.remove_job(check_job_id(name))
        except JobLookupError:
            pass

    def add_periodic(self, job_id: str, fn: Callable[[], Any], interval_s: float, *, first_delay_s: float = 0.0) -> None:
        """A housekeeping job (sync, heartbeat, retention...)."""
        first = datetime.now(UTC) + timedelta(seconds=first_delay_s)
        self._scheduler.add_job(fn, IntervalTrigger(seconds=interval_s, start_date=first, timezone=UTC),
                                id=job_id, name=job_id, replace_existing=True)

    def job_count(self) -> int:
        return len(self._scheduler.get_jobs())
