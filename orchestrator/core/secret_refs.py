"""``${env:NAME}`` and ``${file:/path}``: secrets referenced instead of stored.

A URL, a check header or a var value may name where its secret lives; the reference is what the
database, the views and the audit log hold, and it is resolved only in memory, where the value is used:
by the checkers right before a request and by strategy placeholders right before a command runs.
Every resolved value is remembered by :mod:`orchestrator.core.redaction`, so it is masked in logs and
records like any other secret. There is no escape syntax: a literal ``${env:`` cannot be written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from orchestrator.core.errors import UnresolvedReference
from orchestrator.core.redaction import REFERENCE, remember

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A secret file is a token or a password, not a document.
MAX_SECRET_FILE_BYTES = 64 * 1024
#: Fields of a check definition (and the like) that may hold references.
REFERENCE_FIELDS = ("url", "headers", "command", "host")

M = TypeVar("M", bound=BaseModel)


def check_references(text: str) -> str:
    """Return ``text`` if each reference in it is well formed; ValueError naming the bad one."""
    for match in REFERENCE.finditer(text):
        kind, name = match.group(1), match.group(2)
        if kind == "env" and not _ENV_NAME.match(name):
            raise ValueError(f"bad reference {match.group(0)!r}: ${{env:NAME}} needs a variable name")
        if kind == "file" and not name.startswith("/"):
            raise ValueError(f"bad reference {match.group(0)!r}: ${{file:/path}} needs an absolute path")
    return text


def has_references(value: Any) -> bool:
    """True when a string, or any string in a list or a mapping's values, holds a reference."""
    if isinstance(value, str):
        return "${" in value and REFERENCE.search(value) is not None
    if isinstance(value, Mapping):
        return any(has_references(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_references(v) for v in value)
    return False


def resolve(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with every reference replaced by its value; UnresolvedReference when one cannot be."""
    if "${" not in text:
        return text
    environ = os.environ if env is None else env

    def value_of(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "env":
            if name not in environ:
                raise UnresolvedReference(f"{match.group(0)}: environment variable {name} is not set")
            value = environ[name]
        else:
            value = _read_secret_file(name, match.group(0))
        remember([value])
        return value

    return REFERENCE.sub(value_of, text)


def _read_secret_file(path: str, ref: str) -> str:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise UnresolvedReference(f"{ref}: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise UnresolvedReference(f"{ref}: {path} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB")
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise UnresolvedReference(f"{ref}: {path} is not UTF-8 text") from None


def resolve_value(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """Resolve references in a string, a list of strings or a mapping's string values."""
    if isinstance(value, str):
        return resolve(value, env)
    if isinstance(value, Mapping):
        return {k: resolve_value(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_value(v, env) for v in value]
    return value


def resolve_model(model: M, fields: tuple[str, ...] = REFERENCE_FIELDS, env: Mapping[str, str] | None = None) -> M:
    """A copy of a (frozen pydantic) model with references in ``fields`` resolved; the same object when
    it holds none, so the common case costs a few string scans."""
    changed = {name: getattr(model, name) for name in fields if has_references(getattr(model, name, None))}
    if not changed:
        return model
    resolved = {name: resolve_value(value, env) for name, value in changed.items()}
    return model.model_copy(update=resolved)
