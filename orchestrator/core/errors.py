"""The error hierarchy. One base; the CLI maps each branch to an exit status.

- :class:`InputError` (exit 2): the operator's input is wrong; nothing was changed.
- :class:`DatabaseError` (exit 1): the database cannot be reached or is at the wrong revision.
- :class:`StrategyError`: a recovery strategy failed in a way it understands.
"""

from __future__ import annotations


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
