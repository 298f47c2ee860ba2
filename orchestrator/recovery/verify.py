"""Verification after an action, the fresh look before one, and third-party code under a hard time bound.

:func:`verify_until` re-checks until the required passes in a row, probing every ``verify.interval_s``,
and gives up at ``verify.deadline_s``; :func:`confirm_healthy` stops at the first failure (is it healthy
*now*?). Deadlines and waits are on the injected clock and end early when ``stop`` is set; each probe's
own I/O is still bounded in real time by :func:`run_bounded`, like the checkers' own timeouts. The
results are real :class:`CheckResult` records, so a verified recovery can hand them to the health plane.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.clock import Clock
from orchestrator.health.checkers import probe_now
from orchestrator.plans import Verify

T = TypeVar("T")
#: Probe results kept in the journal's verification record (the last ones explain a failure).
MAX_PROBES_KEPT = 10
#: Longest single wait between looks at the clock, so a moved fake clock or a stop is seen soon.
WAIT_SLICE_S = 0.05

#: ``probe(timeout_s)``: one check now.
Probe = Callable[[float], CheckResult]


@dataclass
class Bounded:
    """The outcome of :func:`run_bounded`: ``finished`` False means the call outlived its bound."""

    finished: bool
    value: Any = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` more for a call that outlived its bound; True once it finished."""
        self.finished = self.done.wait(max(0.0, timeout_s))
        return self.finished


def run_bounded(fn: Callable[[], T], timeout_s: float, name: str = "bounded") -> Bounded:
    """Run ``fn`` in a daemon thread and wait at most ``timeout_s``. A call that overruns is abandoned
    (its thread is a daemon, so it never holds the process); strategies' own commands are killed at
    their deadline by orchestrator.core.proc, so this is the backstop for code that ignores its deadline."""
    result = Bounded(False)

    def target() -> None:
        try:
            result.value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who records it
            result.error = exc
        finally:
            result.done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    result.wait(timeout_s)
    return result


def pause(seconds: float, *, clock: Clock, stop: threading.Event) -> bool:
    """Wait ``seconds`` on ``clock``; False if ``stop`` was set first."""
    deadline = clock.monotonic() + seconds
    while (remaining := deadline - clock.monotonic()) > 0:
        if stop.wait(min(remaining, WAIT_SLICE_S)):
            return False
    return not stop.is_set()


@dataclass
class Verification:
    """How verification went; ``as_record()`` is stored in the journal row."""

    mode: str
    passed: bool = False
    required: int = 0
    successes: int = 0
    probes: list[dict[str, Any]] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    reason: str = ""

    def as_record(self) -> dict[str, Any]:
        return {"mode": self.mode, "passed": self.passed, "required": self.required,
                "successes": self.successes, "probes": self.probes[-MAX_PROBES_KEPT:], "reason": self.reason}

    def passing(self) -> list[CheckResult]:
        """The results of the final run of passes (what the health plane is told)."""
        return self.results[-self.successes:] if self.successes else []

    def _probe(self, probe: Probe, timeout_s: float, clock: Clock) -> bool:
        started = clock.monotonic()
        bounded = run_bounded(functools.partial(probe, timeout_s), timeout_s + 1.0, "verify-probe")
        if bounded.finished and bounded.error is None:
            result: CheckResult = bounded.value
        else:
            error = repr(bounded.error) if bounded.error else "probe did not return in time"
            result = CheckResult(ok=False, latency_ms=(clock.monotonic() - started) * 1000, checked_at=clock.now(),
                                 error=error)
        self.results.append(result)
        self.probes.append({"ok": result.ok, "error": result.error, "ms": round(result.latency_ms, 1)})
        self.successes = self.successes + 1 if result.ok else 0
        return result.ok


def verify_until(probe: Probe, settings: Verify, *, mode: str, stop: threading.Event, clock: Clock,
                 probe_timeout_s: float, required: int | None = None) -> Verification:
    """Probe until ``required`` (default ``settings.successes``) passes in a row or the deadline.
    Stops early (not passed) when ``stop`` is set."""
    out = Verification(mode, required=required or settings.successes)
    deadline = clock.monotonic() + settings.deadline_s
    while not stop.is_set():
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            out.reason = f"not healthy {out.required} times in a row within {settings.deadline_s:g}s"
            return out
        if out._probe(probe, min(probe_timeout_s, remaining), clock) and out.successes >= out.required:
            out.passed, out.reason = True, f"healthy {out.successes} times in a row"
            return out
        pause(max(0.0, min(settings.interval_s, deadline - clock.monotonic())), clock=clock, stop=stop)
    out.reason = "interrupted by shutdown"
    return out


def confirm_healthy(probe: Probe, successes: int, interval_s: float, *, stop: threading.Event, clock: Clock,
                    probe_timeout_s: float) -> Verification:
    """Is it healthy now? One real check; if it passes, ``successes - 1`` more ``interval_s`` apart,
    all of which must pass. Stops at the first failure."""
    out = Verification("check", required=successes)
    while out._probe(probe, probe_timeout_s, clock):
        if out.successes >= successes:
            out.passed, out.reason = True, f"healthy {out.successes} times in a row"
            return out
        if not pause(interval_s, clock=clock, stop=stop):
            out.reason = "interrupted by shutdown"
            return out
    out.reason = f"not healthy: {out.results[-1].error or 'check failed'}"
    return out


def check_probe(spec: CheckSpec) -> Probe:
    """A probe running the component's own health check."""
    return functools.partial(probe_now, spec)
