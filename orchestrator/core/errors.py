"""The error hierarchy. One base; the CLI maps each branch to an exit status.

- :class:`InputError` (exit 2): the operator's input is wrong; nothing was changed.
- :class:`DatabaseError` (exit 1): the database cannot be reached or is at the wrong revision.
- :class:`StrategyError`: a recovery strategy failed in a way it understands.
- :class:`IllegalTransitionError`: a bug, a state machine asked for a move its table does not list.

Below the hierarchy, the internal signals: exceptions one part raises for another to catch (a lost lease
rolls a transaction back, a lost instance lock stops the daemon). They are not OrchestratorErrors, so no
handler of operator errors ever swallows one.
"""

from __future__ import annotations

from enum import Enum

from orchestrator.core.states import IncidentStatus


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a log line or a stored reason (a driver's error
    can run to many lines); the exception's type name when the message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class OrchestratorError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = 1


class InputError(OrchestratorError):
    """Raised when operator input (a flag, a file, a name) is invalid. Says which field and why."""

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)

    def renamed(self, field: str | None) -> InputError:
        """The same error naming the field as the user wrote it (``depends_on`` → ``--depends-on``)."""
        clone = type(self)(self.message, field=field)
        clone.__cause__ = self.__cause__
        return clone


class NotFoundError(InputError):
    """Raised when a named object (component, incident, plan, strategy) does not exist."""


class ConflictError(InputError):
    """Raised when a change would break an invariant: a duplicate name, a dependency cycle."""


class PlanError(InputError):
    """Raised when recovery_strategies.json is invalid. ``field`` is the JSON path."""


class DatabaseError(OrchestratorError):
    """Raised when the database is unreachable, or at a revision this version cannot use."""

    exit_code = 1


class SchemaOutdatedError(DatabaseError):
    """Raised when the database is at an older revision than this code expects."""


class InstanceLockedError(OrchestratorError):
    """Raised when another daemon already runs against the same SQLite database."""

    exit_code = 1


class StrategyError(OrchestratorError):
    """Raised by a strategy for a failure it understands.

    ``permanent=True`` means retrying the same step cannot help (bad parameters, missing binary);
    the executor moves straight to the next step. ``permanent=False`` means a retry may succeed.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(message)


class IllegalTransitionError(OrchestratorError):
    """Raised when a state machine is asked for a (from, to) pair its table does not list."""

    def __init__(self, from_state: Enum, to_state: Enum, machine: str) -> None:
        self.from_state, self.to_state = from_state, to_state
        super().__init__(f"{machine}: illegal transition {from_state.value} -> {to_state.value}")


class IllegalIncidentTransition(IllegalTransitionError):
    """Raised when a move of an incident's status is not in ``incidents.status.LEGAL_TRANSITIONS``."""

    def __init__(self, from_state: IncidentStatus, to_state: IncidentStatus) -> None:
        super().__init__(from_state, to_state, "incident")


class UnresolvedReference(ValueError):
    """Raised when a secret reference cannot be resolved (variable unset, file unreadable); says which."""


class LockLostError(Exception):
    """Raised by the instance lock's ``verify()`` when the lock is gone and cannot be re-taken: another
    daemon holds it."""


class LockUnconfirmed(Exception):
    """Raised by the instance lock's ``verify()`` when the lock's session ended and the database cannot be
    reached to re-take it: asked again at the next verification."""


class LeaseLost(Exception):
    """Raised inside a fenced transaction when the incident is no longer this run's (rolls it back)."""


class ClaimRefused(Exception):
    """Raised inside a journal claim transaction to roll it back (e.g. the incident changed under us)."""
