"""The component registry: the service layer behind `component ...` and `apply`.

Every mutation runs in one write transaction with its audit row; any InputError raised inside rolls the
whole transaction back, so bad input changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import ConflictError, InputError, NotFoundError
from orchestrator.core.states import ComponentState
from orchestrator.db import audit
from orchestrator.db.audit import Actor
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, ComponentDependency, PushMonitor
from orchestrator.incidents import lifecycle

if TYPE_CHECKING:  # pydantic is imported where a definition is validated: `status` reads without it
    from orchestrator.components.definition import ComponentSpec

#: a pause given no end lasts until resumed
INDEFINITELY = datetime(9999, 1, 1, tzinfo=UTC)

#: Definition keys and the row columns they live in (the rest are computed: check, depends_on).
_COLUMNS = (
    "interval_s", "timeout_s", "failure_threshold", "success_threshold", "retry_interval_s",
    "max_probe_interval_s", "plan",
    "criticality", "labels", "vars", "secret_vars", "backup_url", "replicas", "min_replicas", "max_replicas",
    "early_warning",
)


def definition_of(row: Component, names_by_id: dict[int, str]) -> dict[str, Any]:
    """The stored definition of ``row`` in the same shape as ComponentSpec.definition()."""
    out: dict[str, Any] = {"name": row.name, "check": dict(row.check_spec)}
    for key in _COLUMNS:
        out[key] = getattr(row, key)
    out["depends_on"] = sorted(names_by_id[d.depends_on_id] for d in row.dependencies)
    out["labels"] = dict(sorted(out["labels"].items()))
    out["vars"] = dict(sorted(out["vars"].items()))
    out["secret_vars"] = dict(sorted((out["secret_vars"] or {}).items()))
    out["early_warning"] = dict(out["early_warning"] or {})
    return out


def spec_from_definition(definition: dict[str, Any], *, field_prefix: str = "") -> ComponentSpec:
    """Re-validate a (possibly edited) definition dict into a ComponentSpec."""
    from pydantic import ValidationError

    from orchestrator.components.definition import ComponentSpec
    from orchestrator.core.validation import first_error

    data = {
        "name": definition["name"], "check": definition["check"],
        "interval": definition["interval_s"], "timeout": definition["timeout_s"],
        "retry_interval": definition["retry_interval_s"],
        "max_probe_interval": definition.get("max_probe_interval_s"),
        **{k: definition[k] for k in _COLUMNS if not k.endswith("_s")},
        "depends_on": definition["depends_on"],
    }
    try:
        return ComponentSpec(**data)
    except ValidationError as exc:
        raise first_error(exc, prefix=field_prefix) from None


@dataclass(frozen=True)
class Change:
    """One planned change of an apply (or a single mutation)."""

    action: str  # create | update | delete | unchanged
    name: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def changed_fields(self) -> list[str]:
        if self.before is None or self.after is None:
            return []
        return sorted(k for k in self.after if self.before.get(k) != self.after.get(k))


class Registry:
    """Component CRUD over one database. ``plan_names`` is the set of known plans (None: no plan file)."""

    def __init__(self, db: Database, *, plan_names: set[str] | None = None, clock: Clock = SYSTEM_CLOCK,
                 actor: Actor | None = None) -> None:
        self.db = db
        self.plan_names = plan_names
        self.clock = clock
        self.actor = actor or Actor()

    # -- reads ---------------------------------------------------------------------------------
    def all_rows(self, session: Session) -> list[Component]:
        return list(session.scalars(select(Component).order_by(Component.name)))

    def get_row(self, session: Session, name: str) -> Component:
        row = session.scalar(select(Component).where(Component.name == name))
        if row is None:
            raise NotFoundError(f"no component named {name!r}", field="name")
        return row

    def definitions(self, session: Session) -> dict[str, dict[str, Any]]:
        rows = self.all_rows(session)
        names = {r.id: r.name for r in rows}
        return {r.name: definition_of(r, names) for r in rows}

    # -- mutations -----------------------------------------------------------------------------
    def add(self, spec: ComponentSpec) -> Change:
        return self.apply([spec], prune=False, create_only=True)[0]

    def update(self, name: str, edit: Callable[[dict[str, Any]], dict[str, Any]],
               field_names: Callable[[str], str] | None = None) -> Change:
        """Apply ``edit`` (current definition → new definition) to ``name``, re-validate, store."""
        with self.db.read() as session:
            current = self.definitions(session)
        if name not in current:
            raise NotFoundError(f"no component named {name!r}", field="name")
        try:
            spec = spec_from_definition(edit(dict(current[name])))
        except InputError as exc:
            if field_names and exc.field:
                raise InputError(str(exc).split(": ", 1)[1], field=field_names(exc.field)) from None
            raise
        return self.apply([spec], prune=False, update_only=True)[0]

    def remove(self, name: str) -> Change:
        with self.db.write() as session:
            defs = self.definitions(session)
            if name not in defs:
                raise NotFoundError(f"no component named {name!r}", field="name")
            dependents = sorted(n for n, d in defs.items() if name in d["depends_on"])
            if dependents:
                raise ConflictError(f"{', '.join(dependents)} depend on {name!r}: remove or update them first",
                                    field="name")
            self._forget(session, self.get_row(session, name))
            audit.record(session, self.actor, "remove", name, defs[name], None, self.clock)
            return Change("delete", name, defs[name], None)

    def set_hold(self, name: str, *, paused_until: datetime | None, reason: str | None, pause: bool) -> Change:
        """Pause (until a time, or indefinitely: far future) or resume a component."""
        return self.set_operational(name, "pause" if pause else "resume",
                                    paused_until=paused_until if pause else None,
                                    paused_reason=reason if pause else None)

    def set_operational(self, name: str, action: str, **values: Any) -> Change:
        """Change operator-owned fields that are not part of the definition (holds, active target),
        with an audit row; the running daemon picks it up through the bumped generation."""
        with self.db.write() as session:
            row = self.get_row(session, name)
            before = {key: _plain(getattr(row, key)) for key in values}
            for key, value in values.items():
                setattr(row, key, value)
            row.generation += 1
            row.updated_at = self.clock.now()
            after = {key: _plain(value) for key, value in values.items()}
            audit.record(session, self.actor, action, name, before, after, self.clock)
            return Change("update", name, before, after)

    def failback(self, name: str) -> Change:
        """Make the primary endpoint the active target again after a failover."""
        with self.db.read() as session:
            row = self.get_row(session, name)
            if row.active_target != "backup":
                raise ConflictError(f"{name!r} is already on its primary endpoint", field="NAME")
        return self.set_operational(name, "failback", active_target="primary")

    def plan_changes(self, session: Session, specs: list[ComponentSpec], *, prune: bool) -> list[Change]:
        """What applying ``specs`` would do, validated against the whole resulting registry."""
        current = self.definitions(session)
        seen: set[str] = set()
        changes: list[Change] = []
        for spec in specs:
            if spec.name in seen:
                raise ConflictError(f"component {spec.name!r} is declared twice", field="name")
            seen.add(spec.name)
            after = spec.definition()
            before = current.get(spec.name)
            action = "create" if before is None else ("unchanged" if before == after else "update")
            changes.append(Change(action, spec.name, before, after))
        if prune:
            changes += [Change("delete", n, d, None) for n, d in sorted(current.items()) if n not in seen]
        self._validate_result(current, changes)
        return changes

    def apply(self, specs: list[ComponentSpec], *, prune: bool, dry_run: bool = False,
              create_only: bool = False, update_only: bool = False,
              then: Callable[[Session, set[str]], object] | None = None) -> list[Change]:
        """Make the registry match ``specs`` in one transaction (all or nothing). ``then(session, names)``
        runs inside it with the component names the registry will hold (an apply file's status pages)."""
        with self.db.write() as session:
            changes = self.plan_changes(session, specs, prune=prune)
            if then is not None:
                names = set(session.scalars(select(Component.name)))
                names |= {c.name for c in changes if c.action == "create"}
                then(session, names - {c.name for c in changes if c.action == "delete"})
            for change in changes:
                if create_only and change.action != "create":
                    raise ConflictError(f"component {change.name!r} already exists (use `component update`)",
                                        field="name")
                if update_only and change.action == "create":
                    raise NotFoundError(f"no component named {change.name!r}", field="name")
            if not dry_run:
                self._write(session, changes)
            else:
                session.rollback()
            return changes

    # -- internals -----------------------------------------------------------------------------
    def _forget(self, session: Session, row: Component) -> None:
        """Delete ``row``, closing its open incidents as ``removed`` in the same transaction.

        The component's row is locked first: an incident the recorder is opening for it meanwhile (its
        insert holds a key-share lock on the row) commits before the incidents are read, so it is closed
        too instead of outliving the component with its id set to NULL (invariant 2)."""
        session.execute(select(Component.id).where(Component.id == row.id).with_for_update())
        lifecycle.close_removed(session, row.id, at=self.clock.now(),
                                reason=f"component {row.name!r} removed by {self.actor.os_user}")
        session.delete(row)

    def _validate_result(self, current: dict[str, dict[str, Any]], changes: Iterable[Change]) -> None:
        result = dict(current)
        for change in changes:
            if change.after is None:
                result.pop(change.name, None)
            else:
                result[change.name] = change.after
        for name, definition in sorted(result.items()):
            for dep in definition["depends_on"]:
                if dep not in result:
                    raise NotFoundError(f"{name!r} depends on unknown component {dep!r}", field="depends_on")
        for change in changes:
            self._check_plan(change)
        cycle = find_cycle({n: d["depends_on"] for n, d in result.items()})
        if cycle:
            raise ConflictError("dependency cycle: " + " -> ".join(cycle), field="depends_on")

    def _check_plan(self, change: Change) -> None:
        """A plan newly set (or changed) must exist in the plan file. Plans already stored are left to
        the daemon to warn about: an unrelated change (``--timeout``) must not fail because of them."""
        plan = change.after["plan"] if change.after is not None else None
        if plan is None or (change.before is not None and change.before["plan"] == plan):
            return
        if self.plan_names is None or plan not in self.plan_names:
            known = ", ".join(sorted(self.plan_names or [])) or "none: no plan file found"
            raise NotFoundError(f"unknown plan {plan!r} for {change.name!r} (known: {known})", field="plan")

    def _write(self, session: Session, changes: list[Change]) -> None:
        now = self.clock.now()
        rows = {r.name: r for r in self.all_rows(session)}
        for change in changes:
            if change.action == "delete":
                self._forget(session, rows.pop(change.name))
        session.flush()
        for change in changes:
            if change.action == "create":
                row = Component(name=change.name, state=ComponentState.UNKNOWN.value, state_since=now,
                                created_at=now, updated_at=now, generation=1)
                _set_definition(row, change.after)
                session.add(row)
                rows[change.name] = row
            elif change.action == "update":
                row = rows[change.name]
                _supersede_learned(row, change)
                _set_definition(row, change.after)
                row.generation += 1
                row.updated_at = now
        session.flush()
        _keep_tokens(session, [(rows[c.name].id, c.after) for c in changes if c.action in ("create", "update")], now)
        ids = {name: row.id for name, row in rows.items()}
        for change in changes:
            if change.action in ("create", "update"):
                row = rows[change.name]
                wanted = {ids[d] for d in change.after["depends_on"]}
                row.dependencies[:] = [d for d in row.dependencies if d.depends_on_id in wanted]
                have = {d.depends_on_id for d in row.dependencies}
                row.dependencies.extend(ComponentDependency(component_id=row.id, depends_on_id=i)
                                        for i in sorted(wanted - have))
            if change.action != "unchanged":
                audit.record(session, self.actor, change.action, change.name, change.before, change.after,
                             self.clock)


def _supersede_learned(row: Component, change: Change) -> None:
    """A declaration the operator changes replaces what recovery learned about that field (a new
    ``--replicas`` is meant to take effect); re-applying the same definition leaves it (never undoes a
    scale-up or a rollback)."""
    assert change.before is not None and change.after is not None
    if change.before["replicas"] != change.after["replicas"]:
        row.learned_replicas = None
    before, after = change.before["vars"], change.after["vars"]
    redeclared = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    if redeclared & set(row.learned_vars or {}):
        row.learned_vars = {k: v for k, v in row.learned_vars.items() if k not in redeclared}


def _keep_tokens(session: Session, changed: list[tuple[int, dict[str, Any]]], now: datetime) -> None:
    """A push monitor has a ping token from its creation on (kept across updates, never in the
    definition, the audit or the API); a component that stops being one loses it. One read of the
    tokens however many components an apply changes."""
    if not changed:
        return
    have = set(session.scalars(select(PushMonitor.component_id)))
    session.add_all(PushMonitor(component_id=cid, token=str(uuid.uuid4()), created_at=now) for cid, definition in changed
                    if definition["check"].get("kind") == "push" and cid not in have)
    gone = [cid for cid, definition in changed if definition["check"].get("kind") != "push" and cid in have]
    if gone:
        session.execute(delete(PushMonitor).where(PushMonitor.component_id.in_(gone)))


def _set_definition(row: Component, definition: dict[str, Any]) -> None:
    check = definition["check"]
    row.check_spec = check
    row.check_kind = check.get("kind", "http")
    row.url = check.get("url")
    for key in _COLUMNS:
        setattr(row, key, definition[key])


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a column value for the audit row."""
    return value.isoformat() if isinstance(value, datetime) else value


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a path (``a -> b -> a``), or None. Iterative DFS: graphs can be deep."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(graph, WHITE)
    for root in sorted(graph):
        if color[root] != WHITE:
            continue
        stack: list[tuple[str, Iterable[str]]] = [(root, iter(sorted(graph[root])))]
        path = [root]
        color[root] = GREY
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                color[node] = BLACK
                stack.pop()
                path.pop()
            elif color.get(child) == GREY:
                return path[path.index(child):] + [child]
            elif color.get(child) == WHITE:
                color[child] = GREY
                stack.append((child, iter(sorted(graph.get(child, [])))))
                path.append(child)
    return None
