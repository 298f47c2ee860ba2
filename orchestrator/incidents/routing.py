"""Where incident and degradation notifications go: the ``notifications`` section of
recovery_strategies.json (docs/notifications.md), owned here beside the notifier that reads it."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from orchestrator.core.durations import parse_duration
from orchestrator.incidents.escalation import Escalation, Route, Target, check_names
from orchestrator.incidents.notify_send import AppriseUrl, Webhook

#: Incident events a notification can be routed for.
Event = Literal["opened", "reopened", "recovering", "step_failed", "awaiting_approval", "blocked", "escalated",
                "resolved", "degradation"]
EVENTS: tuple[Event, ...] = get_args(Event)
#: Incident events notified when ``notifications.events`` is not given: whatever needs or tells a
#: person, including ``blocked`` (a guard holding automation back must never be silent).
DEFAULT_EVENTS: tuple[Event, ...] = ("opened", "blocked", "escalated", "resolved", "degradation")
#: Events a route may name: the above and the escalation policy's own (always sent when it is configured).
ROUTABLE_EVENTS = (*EVENTS, "reminder", "escalation")


class Notifications(BaseModel):
    # strict and closed like every model of the plan file (orchestrator.plans.models._Model)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    urls: list[AppriseUrl] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)
    #: Events for one component within this window go out as one message.
    group_window_s: Annotated[float, BeforeValidator(parse_duration)] = Field(30.0, alias="group_window")
    #: "degradation": every change of a published degradation level
    events: list[Event] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    #: named destinations that routes and escalation tiers send to (docs/recovery_strategies.md#escalation)
    targets: dict[str, Target] = Field(default_factory=dict)
    #: events matching a route go to its targets instead of ``urls``/``webhooks``; [] (the default): all there
    routes: list[Route] = Field(default_factory=list)
    #: reminders and tiers while an incident is unacknowledged; the default: neither
    escalation: Escalation = Field(default_factory=Escalation)

    @model_validator(mode="after")
    def _names(self) -> Notifications:
        check_names(self.targets, self.routes, self.escalation)
        for i, r in enumerate(self.routes):
            unknown = [e for e in r.events if e not in ROUTABLE_EVENTS]
            if unknown:
                raise ValueError(f"routes[{i}].events: unknown event {unknown[0]!r}; events: {', '.join(ROUTABLE_EVENTS)}")
        return self
