"""Roll back to a previous version: the version comes from a ``resolver`` command, else ``vars.previous_version``.

The command gets the version as ``{version}`` (``{vars.previous_version}`` works too). Facts record
``from_version`` (``vars.current_version`` when set) and ``to_version`` for the report.
"""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from orchestrator.strategy import StepResult, Strategy, StrategyContext, StrategyError, check_template, render

from ._actions import ActionParams, ArgvElement, act, describe_action, run_argv

#: What a resolved version may look like: one token, so it can never smuggle in extra arguments.
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+@/-]{0,127}$")


class RollbackParams(ActionParams):
    """``command`` or ``http`` taking ``{version}``; optional ``resolver`` argv printing the version."""

    placeholder_names = ("version",)
    resolver: list[ArgvElement] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _resolver_templates(self) -> RollbackParams:
        for template in self.resolver or []:
            check_template(template)
        return self


class RollbackStrategy(Strategy):
    """Deploy the previous version; the executor may record ``to_version`` as the current one."""

    name = "rollback"
    Params = RollbackParams
    params: RollbackParams
    # the version rolled back to is current now; one that was "previous" is no longer (None removes it)
    persists = {"to_version": "vars.current_version", "previous_version": "vars.previous_version"}

    def _target_version(self, context: StrategyContext) -> str:
        """Ask the resolver (first non-empty output line) or read vars.previous_version."""
        if self.params.resolver:
            output = run_argv(render(self.params.resolver, context), context)
            lines = [line.strip() for line in output.splitlines() if line.strip()]
            version = lines[0] if lines else ""
            source = f"resolver {self.params.resolver[0]}"
        else:
            version = context.component.vars.get("previous_version", "")
            source = "vars.previous_version"
            if not version:
                raise StrategyError(f"no version to roll back to: component {context.component.name!r} has "
                                    "no var previous_version and the step has no resolver", permanent=True)
        if not _VERSION.match(version):
            raise StrategyError(f"{source} gave an unusable version {version[:60]!r}", permanent=True)
        return version

    def execute(self, context: StrategyContext) -> StepResult:
        started = context.clock.now()
        to_version = self._target_version(context)
        from_version = context.component.vars.get("current_version")
        output = act(self.params, context, {"version": to_version})
        facts: dict[str, object] = {"from_version": from_version, "to_version": to_version}
        if context.component.vars.get("previous_version") == to_version:
            facts["previous_version"] = None
        return StepResult.succeeded(
            f"rolled back {context.component.name} from {from_version or 'unknown'} to {to_version}",
            started_at=started, finished_at=context.clock.now(), output=output, facts=facts)

    def describe(self, context: StrategyContext) -> str:
        # A dry run must not run the resolver: it is a command like any other.
        if self.params.resolver:
            version = "<resolved by " + " ".join(render(self.params.resolver, context)) + ">"
        else:
            version = context.component.vars.get("previous_version", "<vars.previous_version missing>")
        return describe_action(self.params, context, {"version": version})
