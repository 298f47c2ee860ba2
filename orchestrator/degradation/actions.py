"""What the orchestrator itself does at each level: a fixed table, like an overload manager's actions.

The level applied is the higher of the published global level and the orchestrator's own overload
level (its check lateness, see ``self_protection`` in the policy).

| level     | checks                                      | recovery actions started automatically        |
|-----------|---------------------------------------------|-----------------------------------------------|
| normal    | every component at its interval             | every step                                    |
| degraded  | low-criticality components at 2x interval   | every step except ``scale_up``                |
| minimal   | only critical and high components           | ``restart`` / ``failover`` of critical ones, ``notify`` |
| emergency | only critical and high components           | ``notify`` only (steps in flight still verify) |

Shedding applies only to components that answer (UP): one that is down, degraded, flapping or not yet
judged keeps its cadence, so its recovery is seen — otherwise a level raised by unhealthy components
would hold itself up by no longer checking them. Manual recoveries (``orchestrator recover``) are an
operator's decision and are not limited.
"""

from __future__ import annotations

from orchestrator.core.states import ComponentState, Criticality, DegradationLevel

L = DegradationLevel
C = Criticality

#: level → criticality → check interval multiplier (None: not checked while the level holds)
CHECK_FACTORS: dict[L, dict[str, float | None]] = {
    L.NORMAL: {c.value: 1.0 for c in C},
    L.DEGRADED: {C.CRITICAL: 1.0, C.HIGH: 1.0, C.NORMAL: 1.0, C.LOW: 2.0},
    L.MINIMAL: {C.CRITICAL: 1.0, C.HIGH: 1.0, C.NORMAL: None, C.LOW: None},
    L.EMERGENCY: {C.CRITICAL: 1.0, C.HIGH: 1.0, C.NORMAL: None, C.LOW: None},
}

#: Strategies that only tell people: allowed at every level.
_TELLING = frozenset({"notify"})


#: What each level allows to start automatically, in words (for the log).
ALLOWED_SUMMARY = {L.NORMAL: "all recovery steps", L.DEGRADED: "no scale_up",
                   L.MINIMAL: "only restart/failover of critical components",
                   L.EMERGENCY: "automation frozen (notify only)"}


def describe(level: L | str) -> str:
    """One line saying what ``level`` does to checks and recovery, from the tables above."""
    level = L(level)
    factors = CHECK_FACTORS[level]
    skipped = [c for c, f in factors.items() if f is None]
    slower = [c for c, f in factors.items() if f not in (None, 1.0)]
    parts = []
    if slower:
        parts.append(f"{'/'.join(slower)} checked at 2x interval")
    if skipped:
        parts.append(f"{'/'.join(skipped)} not checked")
    return ", ".join([*parts, ALLOWED_SUMMARY[level]])


def check_factor(level: L | str, criticality: str, state: ComponentState = ComponentState.UP) -> float | None:
    """The interval multiplier for a component of ``criticality`` in ``state`` at ``level`` (None: skip
    this check). Only answering (UP) components are shed."""
    if state is not ComponentState.UP:
        return 1.0
    return CHECK_FACTORS[L(level)].get(criticality, 1.0)


def allowed(level: L | str, strategy: str, criticality: str) -> tuple[bool, str]:
    """May an automatic ``strategy`` step start on a component of ``criticality`` at ``level``; and why not."""
    level = L(level)
    if level is L.NORMAL or strategy in _TELLING:
        return True, ""
    if level is L.DEGRADED:
        if strategy == "scale_up":
            return False, "degradation level degraded: scale_up is not started"
        return True, ""
    if level is L.MINIMAL:
        if criticality == C.CRITICAL and strategy in ("restart", "failover"):
            return True, ""
        return False, (f"degradation level minimal: only restart/failover of critical components run "
                       f"(this is {strategy} on a {criticality} component)")
    return False, "degradation level emergency: automation frozen (notify only)"
