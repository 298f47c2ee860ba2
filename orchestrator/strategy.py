"""The public import path for strategy plugins: ``from orchestrator.strategy import Strategy, ...``.

Everything here is defined in :mod:`orchestrator.plugins`; this module only names it for plugin authors.
"""

from orchestrator.plugins.contract import (
    MAX_OUTPUT_CHARS,
    ComponentView,
    StepOutcome,
    StepResult,
    Strategy,
    StrategyContext,
    StrategyFailure,
    StrategyParams,
    VerifyMode,
    bind_logger,
)
from orchestrator.plugins.registry import (
    ENTRY_POINT_GROUP,
    InstalledStrategy,
    StrategyPluginError,
    installed_strategies,
    load_strategy,
)
from orchestrator.plugins.templating import check_syntax, check_template, placeholders, render, render_text

__all__ = ["ENTRY_POINT_GROUP", "MAX_OUTPUT_CHARS", "ComponentView", "InstalledStrategy", "StepOutcome",
           "StepResult", "Strategy", "StrategyContext", "StrategyFailure", "StrategyParams", "StrategyPluginError",
           "VerifyMode", "bind_logger", "check_syntax", "check_template", "installed_strategies", "load_strategy",
           "placeholders", "render", "render_text"]
