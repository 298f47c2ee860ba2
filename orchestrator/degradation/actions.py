"""What degradation does to the orchestrator itself: almost nothing, on purpose.

Degradation levels are for applications to shed optional work. They must never break DESIGN.md
invariant 6 (never silent: the loop detect → record → act → verify stops only by a person's decision
or a named guard, and says so): a fleet-health level that stopped checks or recovery would hide the
very failures that raised it. Restraint in a mass outage is the blast-radius guard's job
(:mod:`orchestrator.recovery.guards`), not a level's. So only two things act on the orchestrator:

1. Its own overload (``self_protection``: its check lateness p95, not the fleet's health) stretches the
   interval of *UP* low and normal components, by at most :data:`MAX_STRETCH`; said in the log,
   ``status`` and the page. A component that is not UP keeps its cadence; no check is ever skipped.
2. An operator's global EMERGENCY override (``orchestrator degradation set emergency``) freezes
   automation: only ``notify`` starts; steps in flight still verify; checks go on. Said in the log,
   ``status``, the page and the skip reason of every incident it holds. Scoped overrides and the other
   levels are published for applications only.

| source                          | checks (UP components; any other state: every interval) | recovery steps   |
|---------------------------------|---------------------------------------------------------|------------------|
| any fleet-health level          | every component at its interval                         | every step       |
| overload ``degraded``           | low at 2x interval                                      | every step       |
| overload ``minimal``            | low and normal at 2x interval                           | every step       |
| operator EMERGENCY override     | every component at its interval                         | ``notify`` only  |

Manual recoveries (``orchestrator recover``) are an operator's decision and are not limited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.core.states import ComponentState, Criticality, DegradationLevel

L = DegradationLevel
C = Criticality

#: The most the orchestrator's overload may stretch a check interval: a broken component is still
#: seen within twice its detection bound, never later.
MAX_STRETCH = 2.0

#: overload level → criticality → check interval multiplier for UP components (never None: no level
#: skips a check, and no multiplier exceeds MAX_STRETCH).
CHECK_FACTORS: dict[L, dict[str, float]] = {
    L.NORMAL: {c.value: 1.0 for c in C},
    L.DEGRADED: {C.CRITICAL: 1.0, C.HIGH: 1.0, C.NORMAL: 1.0, C.LOW: MAX_STRETCH},
    L.MINIMAL: {C.CRITICAL: 1.0, C.HIGH: 1.0, C.NORMAL: MAX_STRETCH, C.LOW: MAX_STRETCH},
    L.EMERGENCY: {C.CRITICAL: 1.0, C.HIGH: 1.0, C.NORMAL: MAX_STRETCH, C.LOW: MAX_STRETCH},
}

#: Strategies that only tell people: allowed even while automation is frozen.
_TELLING = frozenset({"notify"})

#: Why a step does not start while the operator's EMERGENCY override holds (the incident's skip reason).
FROZEN = ("operator EMERGENCY override in force: automation frozen, notify only, until the override "
          "expires or `orchestrator degradation clear`")


def describe(overload: L | str) -> str:
    """One line saying what the orchestrator's overload level ``overload`` does to its checks."""
    factors = CHECK_FACTORS[L(overload)]
    slower = [c for c, f in factors.items() if f != 1.0]
    if not slower:
        return "every component checked at its interval"
    return f"UP {'/'.join(slower)} components checked at {MAX_STRETCH:g}x their interval (others unchanged)"


def check_factor(overload: L | str, criticality: str, state: ComponentState = ComponentState.UP) -> float:
    """The interval multiplier for a component of ``criticality`` in ``state`` while the orchestrator's
    own overload level is ``overload``: 1.0 unless it is UP, never more than MAX_STRETCH."""
    if state is not ComponentState.UP:
        return 1.0
    return min(MAX_STRETCH, CHECK_FACTORS[L(overload)].get(criticality, 1.0))


def allowed(level: L | str, strategy: str, criticality: str) -> tuple[bool, str]:
    """May an automatic ``strategy`` step start while automation is at ``level`` (EMERGENCY only when an
    operator's override froze it; see DegradationService.automation_level); and why not. ``criticality``
    is kept for the guards' call but decides nothing: no level tells components apart any more."""
    if L(level) is not L.EMERGENCY or strategy in _TELLING:
        return True, ""
    return False, FROZEN


def notes(doc: dict[str, Any] | None, *, page: bool = False) -> list[str]:
    """What the orchestrator applies to itself, in words, from the published global document (one line
    each, for ``status`` and the page; [] when it applies nothing). ``page``: the page's banner already
    names the override (who, until when, why), so its line says only what it does, and times read "UTC"
    as everywhere on the page."""
    if not doc:
        return []
    when = _when_utc if page else _when
    lines = []
    override = doc.get("override")
    if override and override.get("level") == L.EMERGENCY.value:
        if page:
            lines.append("automation FROZEN by this override: only notify starts, checks go on; "
                         "`orchestrator degradation clear` ends it")
        else:
            lines.append(f"automation FROZEN by the operator EMERGENCY override ({override.get('actor')} until "
                         f"{when(override.get('expires_at'))}: {override.get('reason')}): only notify starts, "
                         "checks go on; `orchestrator degradation clear` ends it")
    own = doc.get("self_protection")
    if own:
        lines.append(f"self-protection: overloaded since {when(own.get('since'))} ({own.get('reason')}): "
                     f"{own.get('checks')}")
    return lines


def _when_utc(value: object) -> str:
    text = _when(value)
    return text[:-1] + " UTC" if text.endswith("Z") else text


def _when(value: object) -> str:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        return f"{parsed:%Y-%m-%d %H:%M:%S}Z"
    return f"{value:%Y-%m-%d %H:%M:%S}Z" if isinstance(value, datetime) else str(value)
