"""The entry-point registry that finds strategy plugins; nothing here keeps a list of names.

A plugin is a :class:`~orchestrator.plugins.contract.Strategy` subclass registered in the
``orchestrator.strategies`` entry-point group. Built-ins register exactly like third-party plugins.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import NamedTuple

from pydantic import BaseModel

from orchestrator.core.errors import InputError, NotFoundError
from orchestrator.plugins.contract import PERSISTABLE_FIELDS, Strategy

ENTRY_POINT_GROUP = "orchestrator.strategies"


class InstalledStrategy(NamedTuple):
    name: str
    target: str  # "module:Class"
    distribution: str | None


class StrategyPluginError(InputError):
    """Raised when an installed strategy plugin cannot be imported or is not a Strategy subclass."""


_loaded: dict[str, type[Strategy]] = {}


def _entry_points() -> dict[str, EntryPoint]:
    # Read afresh each time: a plugin installed while the process runs is found without a restart.
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        other = found.get(ep.name)
        if other is not None and other.value != ep.value:
            raise StrategyPluginError(f"strategy {ep.name!r} is registered twice: {other.value} and {ep.value}")
        found.setdefault(ep.name, ep)
    return found


def installed_strategies() -> list[InstalledStrategy]:
    """Every registered strategy with its import target and distribution, sorted by name."""
    return [InstalledStrategy(ep.name, ep.value, ep.dist.name if ep.dist else None)
            for ep in sorted(_entry_points().values(), key=lambda e: e.name)]


def load_strategy(name: str) -> type[Strategy]:
    """The class registered as ``name``; imported on first use and cached. NotFoundError lists names."""
    if name in _loaded:
        return _loaded[name]
    eps = _entry_points()
    if name not in eps:
        raise NotFoundError(f"unknown strategy {name!r}; installed: {', '.join(sorted(eps)) or 'none'}")
    try:
        cls = eps[name].load()
    except Exception as exc:  # any import-time failure of third-party code is reported, not raised raw
        raise StrategyPluginError(f"strategy plugin {name!r} ({eps[name].value}) failed to import: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise StrategyPluginError(
            f"strategy plugin {name!r} ({eps[name].value}) is not a subclass of orchestrator.strategy.Strategy")
    if getattr(cls, "__abstractmethods__", None) or not issubclass(cls.Params, BaseModel):
        raise StrategyPluginError(
            f"strategy plugin {name!r} ({eps[name].value}) must implement execute() and set Params to a "
            "pydantic model")
    _check_persists(name, eps[name].value, cls)
    _loaded[name] = cls
    return cls


def _check_persists(name: str, target: str, cls: type[Strategy]) -> None:
    """Refuse at load a ``persists`` naming a component field a strategy may not write (only
    ``active_target``, ``replicas`` and ``vars.NAME``), rather than failing after a step has run."""
    for fact, field in cls.persists.items():
        var = field.removeprefix("vars.") if field.startswith("vars.") else None
        if field in PERSISTABLE_FIELDS or (var is not None and var.isidentifier()):
            continue
        raise StrategyPluginError(
            f"strategy plugin {name!r} ({target}) persists fact {fact!r} to {field!r}, which is not a persistable "
            "field (active_target, replicas or vars.NAME)")
