"""Placeholders in step params: ``{component.name}``, ``{vars.KEY}``, ``{incident.id}``, filled per argv element.

A value holding ``${env:NAME}``/``${file:/path}`` references is resolved here, in memory, right before
use: the command gets the real secret, nothing stored ever does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from orchestrator.core.errors import StrategyError, UnresolvedReference
from orchestrator.core.secret_refs import resolve
from orchestrator.plugins.contract import StrategyContext

#: ``{component.name}``, ``{vars.KEY}``, ``{replicas}``; ``{{`` and ``}}`` are literal braces.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w]*(?:\.[A-Za-z0-9_][\w.-]*)?)\}")


def _lookup(key: str, context: StrategyContext, extra: Mapping[str, object]) -> str:
    value = _raw_value(key, context, extra)
    try:
        return resolve(value)
    except UnresolvedReference as exc:
        raise StrategyError(f"placeholder {{{key}}}: {exc}", permanent=True) from None


def _raw_value(key: str, context: StrategyContext, extra: Mapping[str, object]) -> str:
    comp = context.component
    if key in extra:
        return str(extra[key])
    fixed = {"component.name": comp.name, "component.url": comp.url, "incident.id": context.incident_id,
             "attempt": context.attempt}
    if key in fixed:
        return str(fixed[key])
    if key == "component.backup_url" and comp.backup_url:
        return comp.backup_url
    space, _, name = key.partition(".")
    source = {"vars": comp.vars, "labels": comp.labels}.get(space)
    if source is not None and name in source:
        return source[name]
    hint = f" (component {comp.name!r} has no {space[:-1]} {name!r}; add it with --{space[:-1]} {name}=…)" \
        if source is not None else ""
    raise StrategyError(f"placeholder {{{key}}} cannot be filled{hint}", permanent=True)


def render_text(template: str, context: StrategyContext, extra: Mapping[str, object] | None = None,
                escape: Callable[[str], str] | None = None) -> str:
    """Fill the placeholders of one string (each value passed through ``escape`` if given, e.g. URL
    quoting); an unknown or missing placeholder → StrategyError(permanent=True) naming it."""
    values = extra or {}

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        value = _lookup(match.group(1), context, values)
        return escape(value) if escape else value

    return _PLACEHOLDER.sub(fill, template)


def render(argv_template: list[str], context: StrategyContext, extra: Mapping[str, object] | None = None) -> list[str]:
    """Fill placeholders into each argv element separately: a value never splits or joins elements."""
    return [render_text(element, context, extra) for element in argv_template]


def placeholders(template: str) -> list[str]:
    """The placeholder names used in ``template`` (for load-time validation of plans)."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)]


def check_syntax(template: str) -> str:
    """Raise ValueError when ``template`` holds a NUL byte (no argv element, header or URL can carry
    one: it would fail only when the step runs) or a brace that is neither a placeholder nor doubled
    (``{vars.x`` would otherwise run literally); return ``template``. It must never accept what
    :func:`render` would pass on differently from what the operator meant: a step runs the command
    they wrote, or the plan file is refused (invariant 3, do no harm)."""
    if "\x00" in template:
        raise ValueError(f"contains a NUL byte at offset {template.index(chr(0))}")
    rest = _PLACEHOLDER.sub("", template)
    for brace in ("{", "}"):
        if brace in rest:
            raise ValueError(f"unbalanced {brace!r} (write {brace * 2} for a literal brace)")
    return template


def check_template(template: str, extra_names: tuple[str, ...] = ()) -> str:
    """Raise ValueError for a malformed template (:func:`check_syntax`) or a placeholder no context
    could ever fill; return ``template``."""
    check_syntax(template)
    for key in placeholders(template):
        space = key.partition(".")[0]
        known = key in extra_names or key in ("component.name", "component.url", "component.backup_url",
                                               "incident.id", "attempt")
        if not known and not (space in ("vars", "labels") and "." in key):
            allowed = ", ".join(["component.name", "component.url", "component.backup_url", "vars.KEY",
                                 "labels.KEY", "incident.id", "attempt", *extra_names])
            raise ValueError(f"unknown placeholder {{{key}}} (known: {allowed}; write {{{{ for a literal brace)")
    return template
