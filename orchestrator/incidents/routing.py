"""Where incident and degradation notifications go: the ``notifications`` section of
recovery_strategies.json (docs/notifications.md), owned here beside the notifier that reads it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from orchestrator.core.durations import parse_duration
from orchestrator.incidents.notify_send import AppriseUrl, Webhook

#: Incident events a notification can be routed for.
EVENTS = ("opened", "reopened", "recovering", "step_failed", "awaiting_approval", "blocked", "escalated",
          "resolved", "degradation")
#: Incident events notified when ``notifications.events`` is not given: whatever needs or tells a
#: person, including ``blocked`` (a guard holding automation back must never be silent).
DEFAULT_EVENTS = ("opened", "blocked", "escalated", "resolved", "degradation")


class Notifications(BaseModel):
    # strict and closed like every model of the plan file (orchestrator.plans.models._Model)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    urls: list[AppriseUrl] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)
    #: Events for one component within this window go out as one message.
    group_window_s: Annotated[float, BeforeValidator(parse_duration)] = Field(30.0, alias="group_window")
    #: "degradation": every change of a published degradation level
    events: list[Literal[EVENTS]] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
