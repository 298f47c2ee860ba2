"""Reading hand-written configuration files (plan files, apply files) without surprises.

A size cap checked before the file is read whole, and a decoded tree checked in one iterative walk:
no key twice in one object, nesting at most MAX_DEPTH deep, integers at most MAX_INT_DIGITS long, no
NaN or infinity. What json.loads (or PyYAML) would accept silently or fail on with a RecursionError
or ValueError becomes one InputError (or subclass) naming the file and the JSON path.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from typing import Any

from orchestrator.core.errors import InputError

#: Deepest nesting of objects and lists (the documented formats need 6).
MAX_DEPTH = 32
#: Longest integer accepted; every count and limit in these files is far shorter.
MAX_INT_DIGITS = 15


def key_path(prefix: str, key: str) -> str:
    """``prefix.key``, or ``prefix["odd key"]`` when the key is not a plain word."""
    return f"{prefix}.{key}" if key.replace("_", "").replace("-", "").isalnum() else f"{prefix}[{json.dumps(key)}]"


def read_capped(source: str, limit_bytes: int, what: str, error: type[InputError] = InputError) -> str:
    """The UTF-8 text of ``source``; refused before reading it whole when larger than ``limit_bytes``."""
    limit = f"the {what} limit is {limit_bytes // 1024} KiB"
    try:
        with open(source, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > limit_bytes:
                raise error(f"{source} is {size} bytes: {limit}")
            raw = file.read(limit_bytes + 1)  # a pipe or a growing file has no size to trust
    except OSError as exc:
        raise error(f"cannot read {what} {source}: {exc.strerror or exc}") from None
    if len(raw) > limit_bytes:
        raise error(f"{source} is larger than {limit_bytes} bytes: {limit}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {what} {source}: not UTF-8 text (byte {exc.start})") from None


def decode_json(text: str, source: str, error: type[InputError] = InputError) -> Any:
    """JSON text → plain data, checked with :func:`check_tree`."""
    try:
        data = json.loads(text, object_pairs_hook=_Object, parse_int=_int, parse_constant=_NotFinite,
                          parse_float=_float)
    except json.JSONDecodeError as exc:
        raise error(f"invalid JSON in {source} at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise error(f"nested deeper than {MAX_DEPTH} levels ({source})", field="$") from None
    check_tree(data, source, error)
    return data


class _Object(dict[str, Any]):
    """A decoded JSON object that remembers the first key it saw twice."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.duplicate = next((k for k, n in Counter(k for k, _ in pairs).items() if n > 1), None)


class Refused(str):
    """A decoded number the file must not contain; reported with its path by :func:`check_tree`."""

    reason = ""


class _NotFinite(Refused):
    reason = "must be a finite number"


class TooLong(Refused):
    reason = f"number too large (at most {MAX_INT_DIGITS} digits)"


def _int(text: str) -> int | Refused:
    return TooLong(text) if len(text.lstrip("+-").replace("_", "")) > MAX_INT_DIGITS else int(text)


def _float(text: str) -> float | Refused:
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text)


def check_tree(data: Any, source: str, error: type[InputError] = InputError) -> None:
    """One iterative walk (deep input cannot overflow the stack) over every value, with its path."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            # Name the innermost key, not a chain of thirty [0]s below it.
            raise error(f"nested deeper than {MAX_DEPTH} levels ({source})",
                        field=re.sub(r"(\[\d+\])+$", "", path) or "$")
        if isinstance(value, _Object) and value.duplicate is not None:
            raise error(f"defined twice: a key may appear once in an object, the second would silently "
                        f"replace the first ({source})", field=_child(path, value.duplicate))
        if isinstance(value, dict):
            stack.extend((v, _child(path, str(k)), depth + 1) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in reversed(list(enumerate(value))))
        elif isinstance(value, Refused):
            raise error(f"{value.reason}, got {value[:20]}{'…' if len(value) > 20 else ''} ({source})",
                        field=path or "$")
        elif isinstance(value, float) and not math.isfinite(value):
            raise error(f"must be a finite number ({source})", field=path or "$")


def _child(path: str, key: str) -> str:
    return key_path(path, key).lstrip(".")
