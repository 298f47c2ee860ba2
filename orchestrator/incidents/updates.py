"""Human-written incident updates (investigating → identified → monitoring → resolved), the only writer
of ``incident_updates``.

An update is what a person tells the incident's audience; it never changes the incident's own status,
which stays with the recovery loop (``incidents/status.py``): the public state of an incident is the
state of its newest public update. Public updates are shown on the status pages that include its
component and in their Atom feeds; private ones only on the incident's own page.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import InputError, NotFoundError
from orchestrator.core.states import UpdateState
from orchestrator.db import audit
from orchestrator.db.audit import Actor
from orchestrator.db.engine import Database
from orchestrator.db.models import Incident, IncidentUpdate

#: longest update message (a few paragraphs for customers)
MAX_MESSAGE_CHARS = 4000


def update_dict(row: IncidentUpdate) -> dict[str, Any]:
    return {"id": row.id, "incident_id": row.incident_id, "at": row.at, "state": row.state,
            "message": row.message, "public": row.public, "author": row.author}


def add_update(db: Database, incident_id: int, message: str, *, state: str, public: bool,
               actor: Actor | None = None, clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """Record an update; InputError naming ``message`` or ``state`` for bad input, NotFoundError for
    an unknown incident. Audited with its author."""
    message = (message or "").strip() if isinstance(message, str) else ""
    if not message:
        raise InputError("an update needs a message", field="message")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InputError(f"a message is at most {MAX_MESSAGE_CHARS} characters, got {len(message)}",
                         field="message")
    if "\x00" in message:
        raise InputError("a message cannot hold a NUL character", field="message")
    if state not in {s.value for s in UpdateState}:
        raise InputError(f"unknown state {state!r} (one of {', '.join(s.value for s in UpdateState)})",
                         field="state")
    actor = actor or Actor()
    now = clock.now()
    with db.write() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise NotFoundError(f"no incident {incident_id}", field="ID")
        row = IncidentUpdate(incident_id=incident_id, at=now, state=state, message=message, public=public,
                             author=actor.os_user)
        session.add(row)
        incident.updated_at = now
        audit.record(session, actor, "incident_update", f"incident:{incident_id}", None,
                     {"state": state, "public": public, "message": message}, clock)
        session.flush()
        return update_dict(row)


def list_updates(db: Database, incident_id: int) -> list[dict[str, Any]]:
    """Every update of one incident, oldest first."""
    with db.read() as session:
        rows = session.scalars(select(IncidentUpdate).where(IncidentUpdate.incident_id == incident_id)
                               .order_by(IncidentUpdate.at, IncidentUpdate.id))
        return [update_dict(r) for r in rows]
