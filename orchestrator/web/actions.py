"""Every write the web app can make, each through the service function the CLI uses, audited with the user.

Routes parse the request and call one of these; nothing else in ``web/`` changes the database.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from orchestrator.accounts.service import Principal
from orchestrator.components.registry import INDEFINITELY, Registry
from orchestrator.components.views import component_views
from orchestrator.core.errors import ConflictError, InputError, NotFoundError
from orchestrator.db import audit
from orchestrator.db.audit import Actor
from orchestrator.incidents import operator
from orchestrator.web.source import WebSource


def api_actor(principal: Principal | None, remote_address: str, method: str, path: str) -> Actor:
    """The audit actor of an API write: the user (``api`` for the legacy token), the remote address
    as host, the request as command with the API token's id when one was used."""
    via = f" (api token #{principal.token_id})" if principal and principal.token_id else ""
    return Actor(os_user=principal.name if principal else "api", host=remote_address,
                 command=f"{method} {path}{via}")


def _registry(source: WebSource, actor: Actor) -> Registry:
    return Registry(source.db, clock=source.clock, actor=actor)


def _view(source: WebSource, name: str) -> dict[str, Any]:
    with source.db.read() as session:
        return component_views(session, source.clock.now(), name)[0]


def pause(source: WebSource, actor: Actor, name: str, for_s: float | None, reason: str | None) -> dict[str, Any]:
    """``for_s`` seconds (a validated, capped duration), or until resumed when None."""
    until = source.clock.now() + timedelta(seconds=for_s) if for_s else INDEFINITELY
    _registry(source, actor).set_hold(name, paused_until=until, reason=reason or None, pause=True)
    return _view(source, name)


def resume(source: WebSource, actor: Actor, name: str) -> dict[str, Any]:
    _registry(source, actor).set_hold(name, paused_until=None, reason=None, pause=False)
    return _view(source, name)


def maintenance(source: WebSource, actor: Actor, name: str, for_s: float | None, end: bool) -> dict[str, Any]:
    if end == (for_s is not None):
        raise InputError("give either for (a duration) or end", field="for")
    until = None if end else source.clock.now() + timedelta(seconds=for_s)
    _registry(source, actor).set_operational(name, "maintenance-end" if end else "maintenance",
                                             maintenance_until=until)
    return _view(source, name)


def recover(source: WebSource, actor: Actor, name: str, plan: str | None, dry_run: bool) -> tuple[dict[str, Any], int]:
    """Start the component's recovery in the background (the CLI's `recover`): the answer and its status.

    The one place the web app starts a plan run. A dry run renders what each step would run and
    writes, runs and sends nothing (no incident, no audit row), like ``recover --dry-run``.
    """
    try:
        coordinator = source.coordinator()
        if dry_run:
            return {"dry_run": True, "steps": coordinator.dry_run(name, plan)}, 200
        incident_id = coordinator.recover(name, plan, wait=False)
    except (NotFoundError, ConflictError):
        raise
    except InputError as exc:  # no plan file, or none for this component: the state, not the request
        raise ConflictError(exc.message, field="plan") from None
    with source.db.write() as session:
        audit.record(session, actor, "recover", name, None, {"incident": incident_id, "plan": plan}, source.clock)
    return {"incident": incident_id, "status_url": f"/api/v1/incidents/{incident_id}"}, 202


def ack(source: WebSource, actor: Actor, incident_id: int) -> dict[str, Any]:
    return operator.ack(source.db, incident_id, actor=actor, clock=source.clock)


def approve(source: WebSource, actor: Actor, incident_id: int) -> dict[str, Any]:
    return operator.approve(source.db, incident_id, actor=actor, clock=source.clock)


def resolve(source: WebSource, actor: Actor, incident_id: int, reason: str) -> dict[str, Any]:
    return operator.resolve(source.db, incident_id, reason, actor=actor, clock=source.clock)


def note(source: WebSource, actor: Actor, incident_id: int, text: str) -> dict[str, Any]:
    return operator.note(source.db, incident_id, text, actor=actor, clock=source.clock)


def add_window(source: WebSource, actor: Actor, kind: str, start_in_s: float | None, **given: Any) -> dict[str, Any]:
    """A maintenance window or silence, opening ``start_in_s`` from now (None: now); the service's
    validation answers 400 naming the field."""
    from orchestrator.components.windows import WindowKind, WindowRequest, WindowService

    start = None if start_in_s is None else source.clock.now() + timedelta(seconds=start_in_s)
    req = WindowRequest(WindowKind(kind), start=start, **given)
    return WindowService(source.db, clock=source.clock, actor=actor).add(req)


def remove_window(source: WebSource, actor: Actor, kind: str, window_id: int) -> dict[str, Any]:
    from orchestrator.components.windows import WindowKind, WindowService

    return WindowService(source.db, clock=source.clock, actor=actor).remove(WindowKind(kind), window_id)


def list_windows(source: WebSource, kind: str) -> list[dict[str, Any]]:
    from orchestrator.components.windows import WindowKind, WindowService

    return WindowService(source.db, clock=source.clock).list(WindowKind(kind))
def incident_update(source: WebSource, actor: Actor, incident_id: int, message: str, state: str,
                    public: bool) -> dict[str, Any]:
    from orchestrator.incidents.updates import add_update

    return add_update(source.db, incident_id, message, state=state, public=public, actor=actor, clock=source.clock)
