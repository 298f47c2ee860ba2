"""Label selectors (``team=checkout,tier=web``): one grammar for degradation scopes, maintenance
windows and silences."""

from __future__ import annotations

import re
from collections.abc import Mapping

_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.\-/]{0,62})?$")
_VALUE = re.compile(r"^[A-Za-z0-9_.\-]{1,63}$")

Selector = tuple[tuple[str, str], ...]


def parse_selector(text: str) -> Selector:
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


def selector_text(pairs: Selector) -> str:
    """The canonical spelling of a selector (sorted, no spaces)."""
    return ",".join(f"{k}={v}" for k, v in pairs)


def selects(pairs: Selector, labels: Mapping[str, object] | None) -> bool:
    """Whether a component with ``labels`` has every key=value of the selector."""
    labels = labels or {}
    return all(key in labels and str(labels[key]) == value for key, value in pairs)
