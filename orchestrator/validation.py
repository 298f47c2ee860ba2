"""Turn pydantic validation errors into one-line InputErrors that name the field."""

from __future__ import annotations

import re
from collections.abc import Callable

from pydantic import ValidationError

from orchestrator.errors import InputError

_NAMED = re.compile(r"^([a-z_]+(?:\.[a-z_]+)*): (.+)$", re.S)


def error_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """``("components", 2, "interval")`` → ``components[2].interval``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def first_error(exc: ValidationError, *, prefix: str = "", rename: Callable[[str], str] | None = None) -> InputError:
    """The first problem of ``exc`` as an InputError; ``rename`` maps a field path to what the user typed."""
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    # Whole-model validators name their field in the message: "timeout: must be shorter than ...".
    named = _NAMED.match(message)
    if named:
        loc = (*loc, *named.group(1).split("."))
        message = named.group(2)
    path = error_path(loc, prefix) or prefix or "input"
    if rename:
        path = rename(path)
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "missing":
        message = "required"
    return InputError(message.splitlines()[0], field=path)
