"""Durations as operators write them: ``500ms``, ``10s``, ``5m``, ``1h``, ``2d`` or plain seconds."""

from __future__ import annotations

import math
import re

_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
#: A sanity cap: nothing we schedule or keep is meaningfully longer than ten years.
MAX_DURATION_S = 3660 * 86400.0


def parse_duration(text: str | float | int) -> float:
    """Return seconds for ``text``; raise ValueError with a one-line reason otherwise."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        match = _PATTERN.match(str(text))
        if not match:
            raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 10s, 5m, 1h, 2d)")
        seconds = float(match.group(1)) * _UNITS_S[match.group(2) or "s"]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {text!r}")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"duration too long: {text!r} (at most 3660d)")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact human form of ``seconds`` (``0.5`` → ``500ms``, ``90`` → ``90s``)."""
    if 0 < seconds < 1:
        return f"{_plain(seconds * 1000)}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{_plain(seconds)}s"


def _plain(number: float) -> str:
    """A number without exponent notation (``1e+06`` would not parse back)."""
    return f"{number:.6f}".rstrip("0").rstrip(".")
