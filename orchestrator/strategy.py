"""The public import path for strategy plugins, and the only one: ``from orchestrator.strategy import ...``.

A strategy (built-in or third-party) imports nothing else of the package (an import contract in
pyproject.toml checks the built-ins). What it needs from the daemon comes through its
:class:`StrategyContext`: the component, a deadline on the context's ``clock``, a bound ``logger``,
``probe`` (one health check now) and ``send`` (one notification). The helpers below are the rest of the
surface: templating, running one argv, redaction, check and notification target types, errors.
Tests of a plugin build contexts with :mod:`orchestrator.testing`. docs/plugins.md walks through one.
"""

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec, parse_status_set
from orchestrator.core.clock import Clock
from orchestrator.core.errors import StrategyError
from orchestrator.core.proc import run_command
from orchestrator.core.redaction import redact
from orchestrator.core.states import AttemptStatus
from orchestrator.incidents.notify_message import DOCUMENT_VERSION, incident_url
from orchestrator.incidents.notify_send import AppriseUrl, Webhook, public_url
from orchestrator.plugins.contract import (
    MAX_OUTPUT_CHARS,
    PERSISTABLE_FIELDS,
    ComponentView,
    Probe,
    Send,
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

__all__ = ["DOCUMENT_VERSION", "ENTRY_POINT_GROUP", "MAX_OUTPUT_CHARS", "PERSISTABLE_FIELDS", "AppriseUrl",
           "AttemptStatus", "CheckResult", "CheckSpec", "Clock", "ComponentView", "InstalledStrategy",
           "Probe", "Send", "StepResult", "Strategy", "StrategyContext", "StrategyError",
           "StrategyFailure", "StrategyParams", "StrategyPluginError", "VerifyMode", "Webhook",
           "bind_logger", "check_syntax", "check_template", "incident_url", "installed_strategies",
           "load_strategy", "parse_status_set", "placeholders", "public_url", "redact", "render",
           "render_text", "run_command"]
