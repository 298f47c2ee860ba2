"""When a push (heartbeat) monitor expects its next success: every ``period``, or on a cron schedule.

Pure functions of wall time: the schedule is how operators write it (``1d``, ``0 3 * * *`` in
``Europe/Berlin``), so it is read in wall time, once per ping; the daemon turns the answer into a
monotonic deadline (orchestrator.health.push) and waits on that alone (invariant 7).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: a push monitor's success may come this long after it was expected before it is late, seconds: a
#: job that runs a few minutes longer than usual is not an incident
DEFAULT_PUSH_GRACE_S = 3600.0
#: a cron schedule has five fields (minute hour day month weekday); seconds or years are refused
CRON_FIELDS = 5


def check_schedule(expression: str) -> str:
    """``expression`` if it is a five-field cron schedule; ValueError naming the problem otherwise."""
    if not isinstance(expression, str) or len(expression.split()) != CRON_FIELDS:
        raise ValueError(f"not a cron schedule: {expression!r} (five fields, e.g. \"0 3 * * *\")")
    from croniter import croniter  # imported on use: `status` and the page read views without it

    if not croniter.is_valid(expression):
        raise ValueError(f"not a cron schedule: {expression!r} (five fields, e.g. \"0 3 * * *\")")
    return expression


def check_tz(name: str) -> str:
    """``name`` if it is an IANA time zone known here (``Europe/Berlin``, ``UTC``); ValueError otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin or UTC)") from None
    return name


def next_expected(after: datetime, *, period_s: float | None, schedule: str | None, tz: str | None) -> datetime:
    """The wall time by which the next success is due after a success (or the start) at ``after``:
    ``after + period``, or the schedule's next run after ``after`` in ``tz`` (UTC when not given).
    A run skipped by a DST jump is due at the next run that exists; the answer is aware UTC."""
    if period_s is not None:
        return after + timedelta(seconds=period_s)
    assert schedule is not None  # CheckSpec refuses a push check with neither
    from croniter import croniter
    local = after.astimezone(ZoneInfo(tz or "UTC"))
    return croniter(schedule, local).get_next(datetime).astimezone(UTC)
