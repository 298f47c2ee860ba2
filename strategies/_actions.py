"""Helpers beside the built-in strategies: run one argv or make one HTTP call for a step.

Both are bounded by the step's deadline, never use a shell, cap what they keep and redact it, and turn
each failure into a StrategyFailure that says whether retrying could help.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote

import requests
from pydantic import AfterValidator, Field, field_validator, model_validator

from orchestrator.strategy import (
    MAX_OUTPUT_CHARS,
    StrategyContext,
    StrategyFailure,
    StrategyParams,
    check_syntax,
    check_template,
    parse_status_set,
    redact,
    render,
    render_text,
    run_command,
)

_LEADING_PLACEHOLDER = re.compile(r"^\{[A-Za-z_][\w.-]*\}")
#: 4xx statuses that may go away on their own, so a retry is worth it.
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
_CHUNK_BYTES = 8192
NonEmpty = Annotated[str, Field(min_length=1)]
#: One argv element: checked alone, so an error names its index (``command[1]: contains a NUL byte``).
ArgvElement = Annotated[str, Field(min_length=1), AfterValidator(check_syntax)]


class HttpCall(StrategyParams):
    """One HTTP request; ``url``, header values and string leaves of ``body`` take placeholders."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "POST"
    url: NonEmpty
    headers: dict[str, str] = Field(default_factory=dict)
    #: A JSON object/list (sent as JSON) or a string (sent as is); None sends no body.
    body: dict[str, Any] | list[Any] | str | None = None
    expect_status: list[str] = Field(default_factory=lambda: ["200-299"])

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not (value.startswith(("http://", "https://")) or _LEADING_PLACEHOLDER.match(value)):
            raise ValueError(f"expected an http(s) URL or one starting with a placeholder, got {value!r}")
        return value

    @field_validator("expect_status", mode="before")
    @classmethod
    def _status(cls, value: object) -> list[str]:
        items = value if isinstance(value, list) else [value]
        parse_status_set(items)  # type: ignore[arg-type]
        return [str(item) for item in items]


class ActionParams(StrategyParams):
    """Params of a strategy that acts through exactly one of ``command`` (argv) or ``http``."""

    #: Extra placeholders (beyond component/vars/incident) this strategy fills in.
    placeholder_names: ClassVar[tuple[str, ...]] = ()
    command: list[ArgvElement] | None = Field(default=None, min_length=1)
    http: HttpCall | None = None

    def sources(self) -> list[object]:
        """The ways of acting that were given; exactly one is allowed."""
        return [s for s in (self.command, self.http) if s is not None]

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        for template in value or []:
            check_template(template, cls.placeholder_names)
        return value

    @model_validator(mode="after")
    def _one_way(self) -> ActionParams:
        if len(self.sources()) != 1:
            raise ValueError("give exactly one of: command (an argv list), http (a request)")
        if self.http is not None:
            for template in (self.http.url, *self.http.headers.values()):
                check_template(template, self.placeholder_names)
        return self


def run_argv(argv: list[str], context: StrategyContext) -> str:
    """Run an already rendered argv within the deadline; return its output or raise StrategyFailure."""
    timeout_s = context.remaining_s()
    if timeout_s <= 0:
        raise StrategyFailure(f"no time left before the step deadline to run {argv[0]}")
    context.logger.info("running %s", redact(" ".join(argv)))
    outcome = run_command(argv, timeout_s=timeout_s, max_output_bytes=MAX_OUTPUT_CHARS, on_spawn=context.on_spawn,
                          exit_dir=context.exit_dir)
    if outcome.error is not None:  # never started: a missing or unusable binary will not fix itself
        raise StrategyFailure(outcome.error, permanent=True)
    if outcome.timed_out:
        raise StrategyFailure(f"{argv[0]} timed out after {timeout_s:.1f}s", output=outcome.output)
    if outcome.returncode != 0:
        last = outcome.output.strip().splitlines()[-1:] or [""]
        raise StrategyFailure(f"{argv[0]} exited with status {outcome.returncode}: {last[0]}",
                              output=outcome.output)
    return outcome.output


def render_url(template: str, context: StrategyContext, extra: dict[str, object]) -> str:
    """Fill a URL template: values are percent-encoded, except a placeholder that starts the URL
    (``{component.url}/drain``) which supplies scheme and host and so is taken as is."""
    lead = _LEADING_PLACEHOLDER.match(template)
    head = render_text(lead.group(0), context, extra) if lead else ""
    rest = template[lead.end():] if lead else template
    return head + render_text(rest, context, extra, escape=lambda v: quote(v, safe=""))


def _render_json(value: Any, context: StrategyContext, extra: dict[str, object]) -> Any:
    if isinstance(value, dict):
        return {k: _render_json(v, context, extra) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_json(v, context, extra) for v in value]
    if isinstance(value, str):
        # "{replicas}" alone keeps the extra's own type, so a number stays a JSON number.
        whole = _LEADING_PLACEHOLDER.fullmatch(value)
        if whole and value[1:-1] in extra:
            return extra[value[1:-1]]
        return render_text(value, context, extra)
    return value


def call_http(call: HttpCall, context: StrategyContext, extra: dict[str, object]) -> tuple[int, str]:
    """Make the request within the deadline; return (status, capped body) or raise StrategyFailure."""
    url = render_url(call.url, context, extra)
    headers = {k: render_text(v, context, extra) for k, v in call.headers.items()}
    data: bytes | None = None
    if isinstance(call.body, (dict, list)):
        data = json.dumps(_render_json(call.body, context, extra)).encode()
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(call.body, str):
        data = render_text(call.body, context, extra).encode()
    remaining = context.remaining_s()
    if remaining <= 0:
        raise StrategyFailure(f"no time left before the step deadline for {call.method} {url}")
    context.logger.info("calling %s %s", call.method, redact(url))
    deadline = context.clock.monotonic() + remaining
    try:
        # Redirects are not followed: a recovery call that moved is a configuration error to see.
        with requests.request(call.method, url, headers=headers, data=data, timeout=remaining,
                              stream=True, allow_redirects=False) as resp:
            body = bytearray()
            for chunk in resp.iter_content(_CHUNK_BYTES):
                body += chunk[: MAX_OUTPUT_CHARS - len(body)]
                if len(body) >= MAX_OUTPUT_CHARS or context.clock.monotonic() > deadline:
                    break
            status = resp.status_code
    except requests.RequestException as exc:
        raise StrategyFailure(f"{call.method} {url} failed: {type(exc).__name__}: {exc}") from None
    text = body.decode("utf-8", errors="replace")
    if any(low <= status <= high for low, high in parse_status_set(list(call.expect_status))):
        return status, text
    permanent = 400 <= status < 500 and status not in _RETRYABLE_4XX
    raise StrategyFailure(f"{call.method} {url} returned {status}, expected {', '.join(call.expect_status)}",
                          permanent=permanent, output=text)


def act(params: ActionParams, context: StrategyContext, extra: dict[str, object]) -> str:
    """Run the command or make the call that ``params`` holds; return what it printed or answered."""
    if params.command is not None:
        return run_argv(render(params.command, context, extra), context)
    assert params.http is not None  # the validator guarantees one of the two
    return call_http(params.http, context, extra)[1]


def describe_action(params: ActionParams, context: StrategyContext, extra: dict[str, object]) -> str:
    """What act() would do, rendered: the argv as a JSON list, or ``METHOD URL``."""
    if params.command is not None:
        return "run " + json.dumps(render(params.command, context, extra))
    assert params.http is not None
    return f"{params.http.method} {redact(render_url(params.http.url, context, extra))}"
