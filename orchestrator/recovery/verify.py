"""Verification after an action, and running third-party code under a hard time bound.

Verification re-checks until ``verify.successes`` passes in a row, probing every ``verify.interval_s``,
and gives up at ``verify.deadline_s``. Deadlines here are on the real monotonic clock, like the
checkers': they bound real I/O, which a fake clock cannot speed up.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from orchestrator.health.checkers import get_checker
from orchestrator.health.spec import CheckSpec
from orchestrator.plans import Verify

T = TypeVar("T")
#: Probe results kept in the journal's verification record (the last ones explain a failure).
MAX_PROBES_KEPT = 10


@dataclass
class Bounded:
    """The outcome of :func:`run_bounded`: ``finished`` False means the call outlived its bound."""

    finished: bool
    value: Any = None
    error: BaseException | None = None


def run_bounded(fn: Callable[[], T], timeout_s: float, name: str = "bounded") -> Bounded:
    """Run ``fn`` in a daemon thread and wait at most ``timeout_s``. A call that overruns is abandoned
    (its thread is a daemon, so it never holds the process); strategies' own commands are killed at
    their deadline by orchestrator.core.proc, so this is the backstop for code that ignores its deadline."""
    result = Bounded(False)
    done = threading.Event()

    def target() -> None:
        try:
            result.value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who records it
            result.error = exc
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    result.finished = done.wait(max(0.0, timeout_s))
    return result


@dataclass
class Verification:
    """How verification went; ``as_record()`` is stored in the journal row."""

    mode: str
    passed: bool = False
    required: int = 0
    successes: int = 0
    probes: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    def as_record(self) -> dict[str, Any]:
        return {"mode": self.mode, "passed": self.passed, "required": self.required,
                "successes": self.successes, "probes": self.probes[-MAX_PROBES_KEPT:], "reason": self.reason}


def verify_until(probe: Callable[[float], tuple[bool, str | None]], settings: Verify, *, mode: str,
                 stop: threading.Event, probe_timeout_s: float) -> Verification:
    """Call ``probe(timeout_s) -> (ok, error)`` until ``settings.successes`` in a row or the deadline.

    Stops early (not passed) when ``stop`` is set or the remaining time cannot fit the passes still
    needed."""
    out = Verification(mode, required=settings.successes)
    deadline = time.monotonic() + settings.deadline_s
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            out.reason = f"not healthy {settings.successes} times in a row within {settings.deadline_s:g}s"
            return out
        started = time.monotonic()
        budget_s = min(probe_timeout_s, remaining)
        bounded = run_bounded(functools.partial(probe, budget_s), budget_s + 1.0, "verify-probe")
        ok, error = bounded.value if bounded.finished and bounded.error is None else (
            False, repr(bounded.error) if bounded.error else "probe did not return in time")
        out.probes.append({"ok": ok, "error": error, "ms": round((time.monotonic() - started) * 1000, 1)})
        out.successes = out.successes + 1 if ok else 0
        if out.successes >= settings.successes:
            out.passed, out.reason = True, f"healthy {out.successes} times in a row"
            return out
        stop.wait(max(0.0, min(settings.interval_s, deadline - time.monotonic())))
    out.reason = "interrupted by shutdown"
    return out


def check_probe(spec: CheckSpec) -> Callable[[float], tuple[bool, str | None]]:
    """A probe running the component's own health check."""

    def probe(timeout_s: float) -> tuple[bool, str | None]:
        result = get_checker(spec.kind).check(spec, timeout_s=max(0.05, timeout_s))
        return bool(result.ok), result.error

    return probe
