"""Restart a component: a command of your own, an HTTP call, or a preset for systemd, Docker or Kubernetes.

Presets only build an argv (``systemctl restart UNIT``, ``docker restart NAME``,
``kubectl rollout restart deployment/NAME -n NS``); like any command it runs without a shell.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from orchestrator.strategy import StepResult, Strategy, StrategyContext, check_template, render

from ._actions import ActionParams, act, describe_action, run_argv

#: Which preset fields belong to which preset, with their defaults.
_PRESET_FIELDS = {
    "systemd": {"unit": "{component.name}"},
    "docker": {"container": "{component.name}"},
    "kubernetes": {"deployment": "{component.name}", "namespace": "default"},
}


class RestartParams(ActionParams):
    """``command`` | ``http`` | ``preset`` (+ ``unit`` / ``container`` / ``deployment`` and ``namespace``)."""

    preset: Literal["systemd", "docker", "kubernetes"] | None = None
    unit: str | None = None
    container: str | None = None
    deployment: str | None = None
    namespace: str | None = None

    def sources(self) -> list[object]:
        return [*super().sources(), *([self.preset] if self.preset else [])]

    @model_validator(mode="after")
    def _preset_fields(self) -> RestartParams:
        allowed = _PRESET_FIELDS.get(self.preset or "", {})
        for name in ("unit", "container", "deployment", "namespace"):
            value = getattr(self, name)
            if value is not None and name not in allowed:
                raise ValueError(f"{name!r} only goes with preset "
                                 f"{next(p for p, f in _PRESET_FIELDS.items() if name in f)!r}")
            if value is not None:
                check_template(value)
        return self

    def preset_argv(self) -> list[str]:
        """The argv template a preset stands for (placeholders not yet filled)."""
        values = {**_PRESET_FIELDS[self.preset or ""],
                  **{k: v for k, v in self.model_dump().items() if v is not None}}
        if self.preset == "systemd":
            return ["systemctl", "restart", values["unit"]]
        if self.preset == "docker":
            return ["docker", "restart", values["container"]]
        return ["kubectl", "rollout", "restart", f"deployment/{values['deployment']}",
                "-n", values["namespace"]]


class RestartStrategy(Strategy):
    """Restart the component, then let its own health check decide whether that helped."""

    name = "restart"
    Params = RestartParams
    params: RestartParams

    def execute(self, context: StrategyContext) -> StepResult:
        started = context.clock.now()
        if self.params.preset:
            output = run_argv(render(self.params.preset_argv(), context), context)
        else:
            output = act(self.params, context, {})
        return StepResult.succeeded(f"restarted {context.component.name}", started_at=started,
                                    finished_at=context.clock.now(), output=output)

    def describe(self, context: StrategyContext) -> str:
        if self.params.preset:
            return describe_action(ActionParams(command=self.params.preset_argv()), context, {})
        return describe_action(self.params, context, {})
