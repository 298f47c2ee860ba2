"""Roles and token scopes: the vocabulary of who may do what (docs/web.md, "Users and roles").

- ``viewer`` reads; ``operator`` also pauses, resumes, acks, recovers, approves, resolves, notes and starts
  maintenance; ``admin`` also manages users, components, plans and degradation overrides. Each role
  includes the ones below it.
- A token's scope narrows its user's role: ``read`` tokens may only read, ``write`` tokens do all the
  user's role allows.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"


def parse_role(value: str, field: str = "--role") -> Role:
    """``value`` as a Role, or InputError naming ``field`` and the roles there are."""
    from orchestrator.core.errors import InputError

    try:
        return Role(value)
    except ValueError:
        raise InputError(f"unknown role {value!r}: use {', '.join(r.value for r in Role)}", field=field) from None
