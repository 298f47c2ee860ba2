"""Push (heartbeat) monitors judged by their pings: success, start, fail, and late on the monotonic clock.

A push monitor is never polled. The job pings it (``/ping/<token>``); the daemon learns of each ping
(from its own web server at once, or from the ``push_pings`` table written by ``orchestrator web``)
and the judge thread, which owns :class:`PushWatch`, turns it into a check result for the tracker:

1. a success ping is a passing result; the next success is expected at ``period`` after it, or at the
   schedule's next run after it (orchestrator.core.push_schedule, wall time, read once per ping);
2. that expectation plus ``grace`` becomes a deadline on the monotonic clock, computed once as
   ``now_mono + (deadline_wall - now_wall)``; nothing afterwards looks at wall time, so a clock step
   moves the recorded times only (invariant 7, docs/guarantees.md);
3. a fail ping (``/fail`` or an exit status other than 0) is a failing result at once;
4. a deadline that passes with no success is a failing result ("late"), repeated every ``interval``
   while the monitor stays late, so it goes DOWN through the same tracker and thresholds as a polled
   check (invariant 1), opens an incident and runs the plan (invariant 2);
5. a start ping is no verdict: it marks the run's start, from which the success's duration is counted.

Protects invariant 6 (never silent): a job that stops pinging is noticed by its deadline alone, with
no ping needed; the lateness of each late verdict (detected − deadline) is recorded with its result.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.core.check_result import FAIL, START, SUCCESS, CheckResult, Ping
from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.push_schedule import next_expected

__all__ = ["FAIL", "START", "SUCCESS", "Ping", "PushWatch", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A result for the tracker; ``lateness_ms`` is how long after its deadline a late verdict came."""

    component_id: int
    result: CheckResult
    lateness_ms: float | None = None


class _Monitor:
    __slots__ = ("spec", "interval_s", "last_success", "expected", "deadline", "late")

    def __init__(self, spec: CheckSpec, interval_s: float, last_success: datetime | None) -> None:
        self.spec, self.interval_s, self.last_success = spec, interval_s, last_success
        self.expected: datetime | None = None  # wall time the next success is expected (shown)
        self.deadline = 0.0  # monotonic: late after this
        self.late = False


class PushWatch:
    """Every push monitor's deadline in one heap. Owned by the judge thread (not thread-safe)."""

    def __init__(self) -> None:
        self._monitors: dict[int, _Monitor] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._seq = itertools.count()

    def __contains__(self, component_id: int) -> bool:
        return component_id in self._monitors

    def __len__(self) -> int:
        return len(self._monitors)

    def install(self, component_id: int, spec: CheckSpec, interval_s: float, last_success: datetime | None,
                now: datetime, mono: float) -> None:
        """Watch ``component_id`` (new or changed). Its next success is expected after its last one
        (kept across a change; from the database after a restart), or after now when it never pinged."""
        current = self._monitors.get(component_id)
        if current is not None and current.last_success is not None:
            last_success = current.last_success
        monitor = self._monitors[component_id] = _Monitor(spec, interval_s, last_success)
        self._expect(component_id, monitor, last_success or now, now, mono)

    def remove(self, component_id: int) -> None:
        self._monitors.pop(component_id, None)  # its heap entries are skipped when they come up

    def next_expected(self, component_id: int) -> datetime | None:
        monitor = self._monitors.get(component_id)
        return None if monitor is None else monitor.expected

    def ping(self, ping: Ping, now: datetime, mono: float) -> CheckResult | None:
        """The result a ping stands for (None for a start ping, or a monitor not watched here)."""
        monitor = self._monitors.get(ping.component_id)
        if monitor is None or ping.kind == START:
            return None
        latency_ms = (ping.duration_s or 0.0) * 1000.0
        if ping.kind == FAIL:
            what = "the job reported failure" if ping.exit_status is None else \
                f"the job reported exit status {ping.exit_status}"
            return CheckResult(False, latency_ms, ping.received_at, error=what)
        monitor.last_success = ping.received_at
        monitor.late = False
        self._expect(ping.component_id, monitor, ping.received_at, now, mono)
        return CheckResult(True, latency_ms, ping.received_at)

    def due(self, now: datetime, mono: float) -> list[Verdict]:
        """Late verdicts for every deadline passed by ``mono``; each is due again an interval later."""
        out: list[Verdict] = []
        heap = self._heap
        while heap and heap[0][0] <= mono:
            deadline, _, cid = heapq.heappop(heap)
            monitor = self._monitors.get(cid)
            if monitor is None or monitor.deadline != deadline:
                continue  # removed, or a ping moved its deadline
            out.append(Verdict(cid, CheckResult(False, 0.0, now, error=_late_reason(monitor)),
                               (mono - deadline) * 1000.0))
            monitor.late = True
            self._arm(cid, monitor, mono + monitor.interval_s)
        return out

    def next_deadline(self) -> float | None:
        """The earliest monotonic deadline (stale entries included: a wake-up too early is harmless)."""
        return self._heap[0][0] if self._heap else None

    def _expect(self, cid: int, monitor: _Monitor, after: datetime, now: datetime, mono: float) -> None:
        spec = monitor.spec
        monitor.expected = next_expected(after, period_s=spec.period_s, schedule=spec.schedule, tz=spec.tz)
        late_at = monitor.expected + timedelta(seconds=spec.grace_s)
        self._arm(cid, monitor, mono + (late_at - now).total_seconds())

    def _arm(self, cid: int, monitor: _Monitor, deadline: float) -> None:
        monitor.deadline = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), cid))


def _late_reason(monitor: _Monitor) -> str:
    last = "never pinged" if monitor.last_success is None else \
        f"last success {monitor.last_success.isoformat(timespec='seconds')}"
    expected = monitor.expected.isoformat(timespec="seconds") if monitor.expected else "?"
    return f"late: no success ping by {expected} + grace {monitor.spec.grace_s:g}s ({last})"
