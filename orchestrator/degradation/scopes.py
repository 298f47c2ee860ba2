"""Scopes of degradation levels: the global one and label selectors, in a module of their own so the
commands that only read levels need not import the pydantic policy models."""

from __future__ import annotations

import re

#: The name of the scope every component belongs to.
GLOBAL_SCOPE = "global"
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.\-/]{0,62})?$")
_VALUE = re.compile(r"^[A-Za-z0-9_.\-]{1,63}$")


def parse_selector(text: str) -> tuple[tuple[str, str], ...]:
    """``"team=checkout,tier=web"`` → sorted (key, value) pairs; ValueError naming the bad part."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a label selector is key=value[,key=value…]")
    pairs = []
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not _LABEL.match(key) or not _VALUE.match(value):
            raise ValueError(f"not a label selector term: {part.strip()!r} (use key=value)")
        pairs.append((key, value))
    return tuple(sorted(pairs))


def selector_text(pairs: tuple[tuple[str, str], ...]) -> str:
    """The canonical spelling of a selector (sorted, no spaces): the scope's name."""
    return ",".join(f"{k}={v}" for k, v in pairs)
