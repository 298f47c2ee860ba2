"""Call an HTTP endpoint as a recovery action: flush a cache, trigger a job, hit an admin API.

The URL, header values and string leaves of a JSON body take placeholders; values filled into the URL
are percent-encoded so a component name cannot change the path. Redirects are not followed.
"""

from __future__ import annotations

from pydantic import model_validator

from orchestrator.strategy import StepResult, Strategy, StrategyContext, check_template, redact

from ._actions import HttpCall, call_http, render_url


class HttpParams(HttpCall):
    """``method`` (POST), ``url``, ``headers``, ``body``, ``expect_status`` (["200-299"])."""

    @model_validator(mode="after")
    def _templates(self) -> HttpParams:
        for template in (self.url, *self.headers.values()):
            check_template(template)
        return self


class HttpStrategy(Strategy):
    """Make one request; a status outside ``expect_status`` fails the step (4xx: permanently)."""

    name = "http"
    Params = HttpParams
    params: HttpParams
    idempotent = False

    def execute(self, context: StrategyContext) -> StepResult:
        started = context.clock.now()
        status, body = call_http(self.params, context, {})
        return StepResult.succeeded(f"{self.params.method} returned {status}", started_at=started,
                                    finished_at=context.clock.now(), output=body, facts={"status": status})

    def describe(self, context: StrategyContext) -> str:
        return f"{self.params.method} {redact(render_url(self.params.url, context, {}))}"
