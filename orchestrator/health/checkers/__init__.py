"""Health checkers, one module per kind, all of the :class:`~.base.Checker` shape.

``get_checker(kind)`` returns the process-wide instance of a kind, created on first use, so every
scheduler thread shares one HTTP connection pool.
"""

from __future__ import annotations

import threading

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.errors import InputError
from orchestrator.health.checkers.base import Checker
from orchestrator.health.checkers.command import CommandChecker
from orchestrator.health.checkers.http import HttpChecker
from orchestrator.health.checkers.push import PushChecker
from orchestrator.health.checkers.tcp import TcpChecker

__all__ = ["Checker", "CommandChecker", "HttpChecker", "PushChecker", "TcpChecker", "close_checkers", "get_checker",
           "probe_now"]

#: The check kinds a CheckSpec can name; a fixed set (not plugins) because CheckSpec.kind is a Literal.
CHECKER_TYPES: dict[str, type[Checker]] = {
    "http": HttpChecker,
    "tcp": TcpChecker,
    "command": CommandChecker,
    "push": PushChecker,
}

_instances: dict[str, Checker] = {}
_lock = threading.Lock()


def get_checker(kind: str) -> Checker:
    """The shared checker for ``kind``; raises InputError (listing the known kinds) if unknown."""
    with _lock:
        checker = _instances.get(kind)
        if checker is None:
            try:
                factory = CHECKER_TYPES[kind]
            except KeyError:
                known = ", ".join(sorted(CHECKER_TYPES))
                raise InputError(f"unknown check kind {kind!r} (known: {known})", field="kind") from None
            checker = _instances[kind] = factory()
        return checker


def close_checkers() -> None:
    """Close the shared checkers (at daemon shutdown); the next get_checker() makes new ones."""
    with _lock:
        checkers = list(_instances.values())
        _instances.clear()
    for checker in checkers:
        checker.close()


def probe_now(check: CheckSpec | str, timeout_s: float) -> CheckResult:
    """Run one check of a CheckSpec (or an http URL) now: the probe the executor gives strategies."""
    spec = CheckSpec(kind="http", url=check) if isinstance(check, str) else check
    return get_checker(spec.kind).check(spec, timeout_s=max(0.05, timeout_s))
