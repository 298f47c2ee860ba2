"""SIGTERM and SIGINT before a command has its own handling: one line and a clean exit, never a traceback.

Installed first thing by the entry point (before the heavy imports, which take a second or more on a
busy machine), so a service manager's stop or an operator's Ctrl-C during start-up ends the process
with one line on stderr and status 128 + signal (143 for SIGTERM, 130 for SIGINT) instead of a -15
death or a long KeyboardInterrupt traceback. The daemon replaces these handlers with its graceful
ones as soon as `run` starts, from then on SIGTERM and SIGINT stop it cleanly with status 0.

Imports nothing heavy on purpose.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import NoReturn

_NAMES: dict[int, str] = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM or SIGINT arrives while these handlers are installed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by that signal."""
        return 128 + self.signum


def _raise(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def install() -> None:
    """Turn SIGTERM and SIGINT into :class:`Interrupted` (main thread only). A signal the parent set to
    be ignored (``nohup``, a background job's SIGINT) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _NAMES:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _raise)


def exit_interrupted(exc: KeyboardInterrupt) -> NoReturn:
    """Print the one line for an interruption and exit with its status."""
    signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
    # Another signal while we leave must not turn the clean exit into a traceback.
    for other in _NAMES:
        if threading.current_thread() is threading.main_thread():
            signal.signal(other, signal.SIG_IGN)
    sys.stderr.write(f"interrupted by {_NAMES.get(signum, signum)}: stopped before finishing, nothing "
                     "half-done is kept\n")
    sys.stderr.flush()
    sys.exit(128 + signum)
