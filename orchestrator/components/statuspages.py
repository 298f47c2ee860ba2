"""Public status pages: a title and named groups of components, the only writer of ``status_pages``.

A page is declared by the CLI (``orchestrator statuspage add NAME --title T --group "API=api,auth"``) or in
an apply file (``status_pages:``). It names components and the name each is shown by; what the page shows
of them is decided by ``orchestrator.web.statuspage`` (display names and states, never a URL, label,
error or host). Every change is audited like a component change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.components.definition import NAME_RE
from orchestrator.core.clock import SYSTEM_CLOCK, Clock
from orchestrator.core.errors import ConflictError, InputError, NotFoundError
from orchestrator.db import audit
from orchestrator.db.audit import Actor
from orchestrator.db.engine import Database
from orchestrator.db.models import Component, StatusPage

#: a page title and a group's or component's display name: one line of plain text
MAX_TITLE_CHARS = 200
MAX_DISPLAY_CHARS = 80
#: groups on one page and components in one group (a page for customers, not the whole fleet)
MAX_GROUPS = 50
MAX_GROUP_COMPONENTS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class PageSpec:
    """A validated page definition: ``groups`` is ``[(group name, [(component, display name), ...]), ...]``."""

    name: str
    title: str
    groups: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]

    def groups_json(self) -> list[dict[str, Any]]:
        return [{"name": g, "components": [{"component": c, "display": d} for c, d in members]}
                for g, members in self.groups]

    def components(self) -> set[str]:
        return {c for _g, members in self.groups for c, _d in members}


def _line(value: Any, field: str, max_chars: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError("expected non-blank text", field=field)
    value = value.strip()
    if _CONTROL.search(value):
        raise InputError("control characters are not allowed", field=field)
    if len(value) > max_chars:
        raise InputError(f"at most {max_chars} characters, got {len(value)}", field=field)
    return value


def _component(value: str, field: str) -> tuple[str, str]:
    """``name`` or ``name:Display name``."""
    name, _, display = value.partition(":")
    name = name.strip()
    if not NAME_RE.match(name):
        raise InputError(f"{name!r} is not a component name", field=field)
    return name, _line(display, field, MAX_DISPLAY_CHARS) if display.strip() else name


def parse_group(text: str, field: str = "--group") -> tuple[str, tuple[tuple[str, str], ...]]:
    """``"API=api,auth:Login"`` → ``("API", (("api", "api"), ("auth", "Login")))``."""
    if not isinstance(text, str) or "=" not in text:
        raise InputError("expected GROUP=component[,component...]", field=field)
    group, _, members = text.partition("=")
    return group_spec(group, [m for m in members.split(",") if m.strip()], field)


def group_spec(group: Any, members: Any, field: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """One group from its name and a list of ``name`` / ``name:Display`` entries."""
    group = _line(group, field, MAX_DISPLAY_CHARS)
    if not isinstance(members, list) or not members:
        raise InputError(f"group {group!r} names no component", field=field)
    if len(members) > MAX_GROUP_COMPONENTS:
        raise InputError(f"at most {MAX_GROUP_COMPONENTS} components in a group", field=field)
    parsed = tuple(_component(m, field) if isinstance(m, str) else _component("", field) for m in members)
    names = [n for n, _d in parsed]
    if len(set(names)) != len(names):
        raise InputError(f"group {group!r} names a component twice", field=field)
    return group, parsed


def page_spec(name: Any, title: Any, groups: list[tuple[str, tuple[tuple[str, str], ...]]],
              field: str = "--group") -> PageSpec:
    """A page definition, checked: a valid name, a title, 1-50 groups with distinct names."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputError(f"{name!r} is not a valid page name (lowercase letters, digits, . _ -)", field="name")
    title = _line(title, "title", MAX_TITLE_CHARS)
    if not groups:
        raise InputError("a status page needs at least one group", field=field)
    if len(groups) > MAX_GROUPS:
        raise InputError(f"at most {MAX_GROUPS} groups on a page", field=field)
    if len({g for g, _m in groups}) != len(groups):
        raise InputError("two groups have the same name", field=field)
    return PageSpec(name, title, tuple(groups))


def page_from_data(entry: Any, where: str) -> PageSpec:
    """A page from an apply file entry: ``{name, title, groups: {GROUP: [component, ...]}}``."""
    if not isinstance(entry, dict):
        raise InputError("expected a mapping", field=where)
    unknown = sorted(set(entry) - {"name", "title", "groups"})
    if unknown:
        raise InputError("unknown field", field=f"{where}.{unknown[0]}")
    groups = entry.get("groups")
    if not isinstance(groups, dict):
        raise InputError("expected a mapping of group name to components", field=f"{where}.groups")
    parsed = [group_spec(g, members, f"{where}.groups.{g}") for g, members in groups.items()]
    return page_spec(entry.get("name"), entry.get("title"), parsed, field=f"{where}.groups")


def page_dict(row: StatusPage) -> dict[str, Any]:
    """A page as the CLI's --json and the API show it."""
    return {"name": row.name, "title": row.title, "groups": row.groups, "url": f"/status/{row.name}",
            "created_at": row.created_at, "updated_at": row.updated_at}


def _check_components(session: Session, spec: PageSpec, known: set[str] | None = None) -> None:
    wanted = spec.components()
    if known is None:
        known = set(session.scalars(select(Component.name).where(Component.name.in_(wanted))))
    missing = sorted(wanted - known)
    if missing:
        raise NotFoundError(f"status page {spec.name!r} names unknown component {missing[0]!r}", field="group")


def add(db: Database, spec: PageSpec, *, replace: bool = False, actor: Actor | None = None,
        clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """Create the page (or, with ``replace``, redefine an existing one). ConflictError when it exists
    and ``replace`` is false; NotFoundError when a group names an unknown component."""
    actor = actor or Actor()
    with db.write() as session:
        _check_components(session, spec)
        row = session.scalar(select(StatusPage).where(StatusPage.name == spec.name))
        if row is not None and not replace:
            raise ConflictError(f"status page {spec.name!r} already exists", field="name")
        row = _write(session, row, spec, actor, clock)
        session.flush()
        return page_dict(row)


def _write(session: Session, row: StatusPage | None, spec: PageSpec, actor: Actor, clock: Clock) -> StatusPage:
    """Create or redefine one page, with its audit row, in the caller's transaction."""
    now = clock.now()
    before = None if row is None else {"title": row.title, "groups": row.groups}
    if row is None:
        row = StatusPage(name=spec.name, created_at=now)
        session.add(row)
    row.title, row.groups, row.updated_at = spec.title, spec.groups_json(), now
    audit.record(session, actor, "statuspage_add", f"statuspage:{spec.name}", before,
                 {"title": spec.title, "groups": spec.groups_json()}, clock)
    return row


def sync(session: Session, specs: list[PageSpec], known_components: set[str], *, prune: bool, actor: Actor,
         clock: Clock) -> list[tuple[str, str]]:
    """Make the pages match ``specs`` inside the caller's transaction (an apply file); returns
    ``(action, name)`` for each page: create, update, unchanged, delete (the last only with ``prune``)."""
    if len({s.name for s in specs}) != len(specs):
        raise InputError("two status pages have the same name", field="status_pages")
    for spec in specs:
        _check_components(session, spec, known_components & spec.components())
    rows = {r.name: r for r in session.scalars(select(StatusPage))}
    changes = []
    for spec in specs:
        row = rows.pop(spec.name, None)
        if row is not None and row.title == spec.title and row.groups == spec.groups_json():
            changes.append(("unchanged", spec.name))
            continue
        changes.append(("create" if row is None else "update", spec.name))
        _write(session, row, spec, actor, clock)
    for name, row in sorted(rows.items()) if prune else ():
        changes.append(("delete", name))
        audit.record(session, actor, "statuspage_remove", f"statuspage:{name}",
                     {"title": row.title, "groups": row.groups}, None, clock)
        session.delete(row)
    return changes


def list_pages(db: Database) -> list[dict[str, Any]]:
    with db.read() as session:
        return [page_dict(r) for r in session.scalars(select(StatusPage).order_by(StatusPage.name))]


def get_page(session: Session, name: str) -> StatusPage:
    row = session.scalar(select(StatusPage).where(StatusPage.name == name))
    if row is None:
        raise NotFoundError(f"no status page named {name!r}", field="name")
    return row


def remove(db: Database, name: str, *, actor: Actor | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
    actor = actor or Actor()
    with db.write() as session:
        row = get_page(session, name)
        audit.record(session, actor, "statuspage_remove", f"statuspage:{name}",
                     {"title": row.title, "groups": row.groups}, None, clock)
        session.delete(row)
