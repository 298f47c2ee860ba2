"""Audit rows: who changed what, when, from which host, with the definition before and after.

The definitions are stored redacted (a password changed shows as ``***`` on both sides: the row says
that the check changed, not to what), and so is the command line.
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.redaction import redact, redact_view, secret_values
from orchestrator.db.models import AuditEntry


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): fall back to the numeric id
        return f"uid:{os.getuid()}"


@dataclass(frozen=True)
class Actor:
    """The operator behind a change."""

    os_user: str = field(default_factory=_os_user)
    host: str = field(default_factory=socket.gethostname)
    command: str = field(default_factory=lambda: redact(shlex.join(["orchestrator", *sys.argv[1:]])))


def _redacted(definition: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if definition is None else redact_view(definition, secret_values(definition))


def record(
    session: Session,
    actor: Actor,
    action: str,
    target: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Add one audit row to the caller's transaction, so the change and its record commit together."""
    session.add(
        AuditEntry(
            at=clock.now(), os_user=actor.os_user, host=actor.host, command=actor.command,
            action=action, target=target, before=_redacted(before), after=_redacted(after),
        )
    )
