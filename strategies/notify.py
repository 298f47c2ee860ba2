"""Tell people: send a message to Apprise URLs and/or signed JSON webhooks.

Sending changes nothing about the component, so it is never verified and never resolves an incident.
It is not idempotent either: running it again after a crash sends the message again. A message leaves
the process, so placeholders are rendered redacted: ``{component.url}`` shows ``user:***@``, secret
vars show ``***`` (commands of other strategies still receive the real values).

The subject says what is happening and to what (``[DOWN] api: recovering, attempt 1 (incident 7)``); the
body ends with a link to the incident page when ``public_url`` is configured (``{incident.url}`` in a
template); webhooks receive the structured document of docs/notifications.md (``event: "notify_step"``).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from orchestrator.strategy import (
    DOCUMENT_VERSION,
    AppriseUrl,
    StepResult,
    Strategy,
    StrategyContext,
    StrategyError,
    StrategyFailure,
    StrategyParams,
    VerifyMode,
    Webhook,
    check_template,
    incident_url,
    public_url,
    redact,
    render_text,
)

DEFAULT_TITLE = "[DOWN] {component.name}: recovering, attempt {attempt} (incident {incident.id})"
DEFAULT_MESSAGE = ("Recovery of {component.name} ({component.url}) for incident {incident.id}, "
                   "attempt {attempt}.")
#: Placeholders this step fills besides the common ones: the incident page ('' without public_url).
EXTRA_PLACEHOLDERS = ("incident.url",)
#: Seconds one delivery may take at most, also bounded by the step deadline.
DEFAULT_SEND_TIMEOUT_S = 10.0


class NotifyParams(StrategyParams):
    """``urls`` (Apprise) and/or ``webhooks``; ``title`` and ``message`` take placeholders."""

    urls: list[AppriseUrl] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)
    title: str = DEFAULT_TITLE
    message: str = DEFAULT_MESSAGE

    @model_validator(mode="after")
    def _targets(self) -> NotifyParams:
        if not self.urls and not self.webhooks:
            raise ValueError("give at least one target in urls or webhooks")
        check_template(self.title, EXTRA_PLACEHOLDERS)
        check_template(self.message, EXTRA_PLACEHOLDERS)
        return self


class NotifyStrategy(Strategy):
    """Send the message; succeeds if at least one target got it."""

    name = "notify"
    Params = NotifyParams
    params: NotifyParams
    verification = VerifyMode.NONE
    idempotent = False

    def execute(self, context: StrategyContext) -> StepResult:
        started = context.clock.now()
        link = incident_url(public_url(), context.incident_id)
        title, body = self._rendered(self.params.title, context), self._rendered(self.params.message, context)
        if link and link not in body:
            body = f"{body}\n\n{link}"
        timeout_s = min(DEFAULT_SEND_TIMEOUT_S, context.remaining_s())
        if timeout_s <= 0:
            raise StrategyError("no time left before the step deadline to send")
        deliveries = context.send(self.params.urls, self.params.webhooks, title, body, timeout_s,
                          payload=self._document(context, link, started), timestamp=int(started.timestamp()))
        report = "\n".join(f"{d.kind} {d.target}: {d.detail}" for d in deliveries)
        delivered = sum(d.ok for d in deliveries)
        if not delivered:
            raise StrategyFailure(f"no target got the message: {deliveries[0].detail}", output=report)
        return StepResult.succeeded(f"notified {delivered}/{len(deliveries)} targets", started_at=started,
                                    finished_at=context.clock.now(), output=report,
                                    facts={"delivered": delivered, "targets": len(deliveries)})

    def describe(self, context: StrategyContext) -> str:
        targets = [*self.params.urls, *(hook.url for hook in self.params.webhooks)]
        return f"send {self._rendered(self.params.title, context)!r} to {len(targets)} target(s)"

    @staticmethod
    def _document(context: StrategyContext, link: str | None, now) -> dict:
        """The webhook document (docs/notifications.md) of a message sent by a recovery step."""
        incident = {"id": context.incident_id, "status": "recovering", "resolution": None, "opened_at": None,
                    "resolved_at": None, "url": link}
        labels = dict(context.component.labels)
        event = {"event": "notify_step", "state": "DOWN", "at": now.isoformat(), "component": context.component.name,
                 "component_state": "down", "labels": labels, "reason": None, "resolution": None,
                 "incident": incident}
        return {"version": DOCUMENT_VERSION, "event": "notify_step", "state": "DOWN",
                "component": context.component.name, "labels": labels, "incident": incident, "resolution": None,
                "links": {"incident": link, "page": public_url()}, "sent_at": now.isoformat(),
                "incidents": [context.incident_id], "events": [event], "events_omitted": 0,
                "step": {"index": context.step_index, "attempt": context.attempt}}

    @staticmethod
    def _rendered(template: str, context: StrategyContext) -> str:
        extra = {"incident.url": incident_url(public_url(), context.incident_id) or ""}
        return redact(render_text(template, context, extra), context.component.secrets)
