"""Command checker: runs an argv (never a shell); exit status 0 means healthy."""

from __future__ import annotations

import signal

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.proc import run_command
from orchestrator.health.checkers.base import Attempt, Checker, one_line

#: Output kept from a check command: enough for a reason line and a little context.
MAX_CHECK_OUTPUT_BYTES = 4096
#: Characters of output quoted in a failure reason.
_REASON_CHARS = 120


class CommandChecker(Checker):
    """Healthy when the command exits 0 within the timeout; a timeout kills its process group."""

    kind = "command"

    def _check(self, spec: CheckSpec, attempt: Attempt) -> CheckResult:
        if not spec.command:
            return attempt.fail("no command to run")
        outcome = run_command(
            spec.command, timeout_s=max(attempt.remaining_s(), 0.001), max_output_bytes=MAX_CHECK_OUTPUT_BYTES
        )
        details: dict[str, object] = {"returncode": outcome.returncode, "output": outcome.output}
        if outcome.error:
            return attempt.fail(outcome.error, details=details)
        if outcome.timed_out:
            return attempt.fail(attempt.timeout_error(), details=details)
        if outcome.returncode != 0:
            return attempt.fail(_exit_reason(outcome.returncode, outcome.output), details=details)
        return attempt.succeed(details=details)


def _exit_reason(returncode: int | None, output: str) -> str:
    if returncode is not None and returncode < 0:
        try:
            status = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            status = f"killed by signal {-returncode}"
    else:
        status = f"exit status {returncode}"
    first = one_line(output, _REASON_CHARS)
    return f"{status}: {first}" if first else status
