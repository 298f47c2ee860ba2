"""``POST /api/v1/alerts/alertmanager`` (Alertmanager's webhook, version 4) and ``POST /api/v1/alerts``
(the generic form): alerts as an incident source (docs/alerts.md; the work is
:mod:`orchestrator.incidents.alerts`).

The request models are strict: an unknown key, a wrong type or a status other than firing/resolved is
refused with 400 naming the field before anything is written (docs/web.md "The schema is the validator").
Both are writes: a bearer token (Alertmanager: ``http_config.authorization.credentials``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint, jsonify
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from orchestrator.accounts.roles import Role
from orchestrator.core.errors import InputError
from orchestrator.core.redaction import redact
from orchestrator.core.states import AlertStatus
from orchestrator.incidents.alerts import AlertIn, AlertRouting, intake, list_alerts
from orchestrator.web.api import page
from orchestrator.web.apimodels import NameKey, Paging
from orchestrator.web.operations import operation
from orchestrator.web.responses import AlertView, Page
from orchestrator.web.state import app_state

blueprint = Blueprint("alerts_api", __name__, url_prefix="/api/v1")

#: Alerts taken in one post at most (Alertmanager's max_alerts caps what it sends; a larger post is refused).
MAX_ALERTS = 1000
#: Labels or annotations one alert carries at most, and the longest value kept.
MAX_PAIRS = 64
MAX_VALUE_CHARS = 4096

#: no NUL byte anywhere (PostgreSQL refuses it in text columns), as the API's other free text
_NO_NUL = "^[^\x00]*$"
Text = Annotated[str, Field(max_length=MAX_VALUE_CHARS, pattern=_NO_NUL)]
Key = Annotated[str, Field(min_length=1, max_length=128, pattern=_NO_NUL)]


def _keys_in_schema(schema: dict) -> None:
    """Pydantic writes a key's pattern as ``patternProperties``, which leaves a key without a match
    (one with a NUL) schema-valid; the document says what the model refuses: every key's pattern in
    ``propertyNames``, every value under ``additionalProperties``."""
    values = next(iter(schema.pop("patternProperties", {}).values()), None)
    if values is not None:
        schema["additionalProperties"] = values
    schema.setdefault("propertyNames", {})["pattern"] = _NO_NUL


Pairs = Annotated[dict[Key, Text], Field(max_length=MAX_PAIRS, json_schema_extra=_keys_in_schema)]


def _rfc3339_text(value: object) -> object:
    """A timestamp must be the text the document says (a number would be read as Unix seconds)."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string, e.g. 2026-12-07T10:00:00Z")
    return value


#: timestamps arrive as RFC 3339 text: parsed (not strict), a timezone required
When = Annotated[datetime, BeforeValidator(_rfc3339_text), Field(strict=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AlertmanagerAlert(_Strict):
    status: Literal["firing", "resolved"]
    labels: Pairs
    annotations: Pairs = Field(default_factory=dict)
    startsAt: When | None = None  # noqa: N815 (Alertmanager's spelling)
    endsAt: When | None = None  # noqa: N815
    generatorURL: Text | None = None  # noqa: N815
    fingerprint: Key | None = None


class AlertmanagerWebhook(_Strict):
    """Alertmanager's webhook body, version 4 (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""

    version: Literal["4"]
    groupKey: Text  # noqa: N815
    truncatedAlerts: int = Field(0, ge=0)  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: Text
    groupLabels: Pairs = Field(default_factory=dict)  # noqa: N815
    commonLabels: Pairs = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: Pairs = Field(default_factory=dict)  # noqa: N815
    externalURL: Text = ""  # noqa: N815
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=MAX_ALERTS)


class GenericAlert(_Strict):
    """One alert of the generic form; ``labels.alertname`` (or ``name``) names it, ``labels.component`` its component."""

    name: Annotated[str, Field(min_length=1, max_length=255, pattern=_NO_NUL)] | None = None
    status: Literal["firing", "resolved"] = "firing"
    labels: Pairs = Field(default_factory=dict)
    annotations: Pairs = Field(default_factory=dict)
    fingerprint: Key | None = None
    starts_at: When | None = None
    ends_at: When | None = None
    generator_url: Text | None = None


class GenericAlerts(_Strict):
    alerts: list[GenericAlert] = Field(min_length=1, max_length=MAX_ALERTS)


class AlertOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fingerprint: str
    alert: str | None
    status: Literal["firing", "resolved"]
    component: str | None
    incident: int | None
    outcome: Literal["opened", "reopened", "joined", "already_firing", "unmatched", "resolved", "recorded"]


class AlertQuery(Paging):
    status: Annotated[Literal["firing", "resolved"] | None, Field(description="Only this status.")] = None
    component: Annotated[NameKey | None, Field(description="Only alerts naming this component.")] = None


class AlertItem(AlertView):
    id: int
    component: Annotated[str | None, Field(description="the component it names (registered or not)")]
    incident: Annotated[int | None, Field(description="the incident it opened or joined")]


class AlertPage(Page):
    items: list[AlertItem]


class AlertIntake(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[AlertOutcome]


def _clean(pairs: dict[str, str]) -> dict[str, str]:
    """Values as stored: redacted (a token in an annotation must not reach the database or a message)."""
    return {k: redact(v) for k, v in pairs.items()}


def _aware(at: datetime | None, field: str) -> datetime | None:
    if at is not None and at.tzinfo is None:
        raise InputError("a timestamp needs a timezone (RFC 3339, e.g. 2026-01-01T12:00:00Z)", field=field)
    return at


def _routing() -> AlertRouting:
    """``alerts`` of the plan file in use; the defaults (label ``component``) without one."""
    try:
        plans = app_state().source.coordinator().plans
    except InputError:
        return AlertRouting()
    return plans.alerts if plans is not None else AlertRouting()


def _take(alerts: list[AlertIn]):
    source = app_state().source
    return jsonify({"items": intake(source.db, alerts, routing=_routing(), clock=source.clock)}), 202


@operation(blueprint, "POST", "/alerts/alertmanager", summary="Alertmanager's webhook (version 4): alerts open, "
           "join or end incidents", body=AlertmanagerWebhook, responses={202: AlertIntake}, write=True, role=Role.OPERATOR)
def alertmanager(body: AlertmanagerWebhook):
    """Point a ``webhook_configs`` receiver here with the API token as bearer credentials (docs/alerts.md)."""
    alerts = [AlertIn(AlertStatus(a.status), _clean(a.labels), _clean(a.annotations), "alertmanager", a.fingerprint,
                      _aware(a.startsAt, "startsAt"), _aware(a.endsAt, "endsAt"), a.generatorURL)
              for a in body.alerts]
    return _take(alerts)


@operation(blueprint, "POST", "/alerts", summary="Alerts in the generic JSON form: open, join or end incidents",
           body=GenericAlerts, responses={202: AlertIntake}, write=True, role=Role.OPERATOR)
def generic(body: GenericAlerts):
    """``{"alerts": [{"status": "firing", "labels": {"alertname": "…", "component": "api"}, …}]}`` (docs/alerts.md)."""
    alerts = []
    for a in body.alerts:
        labels = _clean(a.labels)
        if a.name and "alertname" not in labels:
            labels["alertname"] = a.name
        alerts.append(AlertIn(AlertStatus(a.status), labels, _clean(a.annotations), "generic", a.fingerprint,
                              _aware(a.starts_at, "starts_at"), _aware(a.ends_at, "ends_at"), a.generator_url))
    return _take(alerts)


@operation(blueprint, "GET", "/alerts", summary="Alerts received, newest first (also those no component matched)",
           query=AlertQuery, responses={200: AlertPage}, role=Role.VIEWER)
def alerts(query: AlertQuery):
    items = list_alerts(app_state().source.db, status=query.status, component=query.component,
                        before=None if query.cursor is None else int(query.cursor), limit=query.limit + 1)
    return jsonify(page(items, query.limit, "id"))
