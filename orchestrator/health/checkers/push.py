"""The push kind's checker: a push monitor is judged by its pings (orchestrator.health.push), never probed.

``orchestrator check`` and a recovery's verification ask every kind for a check now; for a push monitor
there is nothing to ask, so the answer is a failed result that says so. A plan for a push monitor
verifies with the job's next success ping: the monitor goes UP through the judge and the incident
resolves (docs/push.md).
"""

from __future__ import annotations

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec
from orchestrator.health.checkers.base import Attempt, Checker

#: the one-line answer of a probe of a push monitor
NOT_PROBED = "a push monitor is judged by its pings, not probed: waiting for the next success ping"


class PushChecker(Checker):
    """Answers every probe with :data:`NOT_PROBED` (a failed result: a probe cannot prove a ping came)."""

    kind = "push"

    def _check(self, spec: CheckSpec, attempt: Attempt) -> CheckResult:
        return attempt.fail(NOT_PROBED)
