"""Scopes of degradation levels: the global one and label selectors, in a module of their own so the
commands that only read levels need not import the pydantic policy models."""

from __future__ import annotations

from orchestrator.core.labels import parse_selector, selector_text

__all__ = ["GLOBAL_SCOPE", "parse_selector", "selector_text"]

#: The name of the scope every component belongs to.
GLOBAL_SCOPE = "global"
