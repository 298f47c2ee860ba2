"""The request models of ``/api/v1``: each body, query and path is one strict pydantic model.

They are the validator (a request that does not fit is refused with 400 naming the field, before any
route code runs) and, through pydantic's JSON Schema, the OpenAPI document (``web.openapi``): the two
cannot drift. Strict means a boolean is ``true``/``false`` (never ``"y"`` or ``null``), a number is a
number, an unknown key is refused. The response shapes live in :mod:`orchestrator.web.responses`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.components.windows import CRON_PATTERN, time_zones
from orchestrator.core.durations import MAX_DURATION_S, parse_duration
from orchestrator.core.errors import InputError
from orchestrator.core.states import ComponentState, IncidentStatus, UpdateState
from orchestrator.degradation.service import MAX_WAIT_S
from orchestrator.incidents.operator import MAX_NOTE_CHARS, MAX_REASON_CHARS
from orchestrator.incidents.updates import MAX_MESSAGE_CHARS

#: the incident id column is a BIGINT: a larger number can name no incident (and would overflow the driver)
MAX_ID = 2**63 - 1
#: a component name as the registry stores it (String(63)); anything longer names nothing
MAX_NAME_CHARS = 63
#: the most items one page holds
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def _number(digits: int) -> str:
    """A positive decimal of at most ``digits`` whole digits (no exponent, no sign, not zero)."""
    return rf"(?:[1-9][0-9]{{0,{digits - 1}}}(?:\.[0-9]{{1,3}})?|0\.[0-9]{{0,2}}[1-9])"


#: The duration text the API takes: a positive number and a unit, each unit with a digit count that keeps
#: it under the CLI's cap (orchestrator.core.durations.MAX_DURATION_S), so that every string the pattern
#: admits is a duration the server takes (and the schema says exactly that).
DURATION_PATTERN = ("^(?:" + "|".join(f"{_number(digits)}{unit}" for unit, digits in
                                      (("ms", 9), ("s?", 8), ("m", 6), ("h", 4), ("d", 3))) + ")$")
DurationText = Annotated[str, Field(pattern=DURATION_PATTERN, examples=["30m"])]
DurationSeconds = Annotated[float, Field(gt=0, le=MAX_DURATION_S, allow_inf_nan=False)]
Duration = Annotated[DurationText | DurationSeconds, Field(
    description="A duration: 500ms, 10s, 5m, 1h, 2d (a positive number and a unit; no unit: seconds), or "
                "seconds as a number.")]
#: Free text stored as given: no NUL byte (PostgreSQL refuses it in text columns)
Text = Annotated[str, Field(pattern="^[^\x00]*$", max_length=MAX_NOTE_CHARS)]
#: Python's str.isspace() set, written out: the three regex engines (Rust, ECMA, Python) disagree on \s
_SPACE = "\t\n\x0b\x0c\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: Text with something besides white space in it (a note of blanks is refused by the service)
NON_BLANK = f"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"
NonBlankText = Annotated[str, Field(pattern=NON_BLANK, max_length=MAX_NOTE_CHARS)]
PlanName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
#: a component name as a lookup key: no NUL byte (PostgreSQL refuses it in a query parameter)
NameKey = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS, pattern="^[^\x00]*$")]
#: a label filter: the registry's label-key grammar (components.definition.LABEL_KEY_RE; the key becomes a
#: JSON path), then any value without NUL up to the registry's bound
LABEL_FILTER_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_./-]{0,62}=[^\x00]{0,1024}$"


def optional(**kwargs) -> object:
    """A body field that may be left out but is never ``null`` (absent means the default, None)."""
    return Field(default=None, json_schema_extra=lambda schema: schema.pop("default", None), **kwargs)


def seconds(value: str | float | None) -> float | None:
    """Seconds of a validated :data:`Duration` (None stays None)."""
    return None if value is None else parse_duration(value)


class Strict(BaseModel):
    """Unknown keys refused, no coercion: ``"1"`` is not a number and ``"y"`` not a boolean."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Lax(BaseModel):
    """Query and path parameters arrive as text: numbers are parsed from it, unknown keys refused."""

    model_config = ConfigDict(extra="forbid")


# -- path parameters -------------------------------------------------------------------------------
class NamePath(Lax):
    name: Annotated[NameKey, Field(description="Component name.")]


class IncidentPath(Lax):
    id: Annotated[int, Field(ge=1, le=MAX_ID, description="Incident id.")]


# -- query parameters ------------------------------------------------------------------------------
#: The id cursor of lists newest first: the id the next page starts below (what next_cursor says)
IdCursor = Annotated[str, Field(pattern="^[1-9][0-9]{0,17}$", description="The next_cursor of the previous page.")]


class Paging(Lax):
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT
    cursor: IdCursor | None = None


class ComponentQuery(Lax):
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT
    cursor: Annotated[NameKey | None, Field(description=(
        "The next_cursor of the previous page (the last name it held)."))] = None
    state: Annotated[list[ComponentState], Field(description="Only these states.")] = []
    label: Annotated[list[Annotated[str, Field(pattern=LABEL_FILTER_PATTERN)]],
                     Field(description="Only components with this label (key=value).")] = []


class IncidentQuery(Paging):
    component: Annotated[NameKey | None, Field(description="Only this component's incidents.")] = None
    status: Annotated[IncidentStatus | None, Field(description="Only this status.")] = None
    since: Annotated[DurationText | None, Field(description="Opened within this long (7d).")] = None


_TERM = r"[A-Za-z0-9](?:[A-Za-z0-9_./-]{0,62})?=[A-Za-z0-9_.-]{1,63}"
#: a degradation scope: global, or a label selector key=value[,key=value…] (degradation.policy's grammar,
#: without the spaces the plan file tolerates)
SCOPE_PATTERN = f"^(?:global|{_TERM}(?:,{_TERM}){{0,15}})$"


class DegradationQuery(Lax):
    scope: Annotated[str | None, Field(pattern=SCOPE_PATTERN, description=(
        "A configured label-selector scope (team=checkout); default global."))] = None
    after: Annotated[int | None, Field(ge=0, le=MAX_ID, description=(
        "With wait: answer as soon as the version is not this one."))] = None
    wait: Annotated[DurationText | None, Field(description=(
        f"Long-poll up to this long (at most {MAX_WAIT_S:.0f}s); 304 if unchanged."))] = None


# -- request bodies --------------------------------------------------------------------------------
class PauseBody(Strict):
    for_: Duration = optional(alias="for", description="How long; absent: until resumed.")
    reason: Text = optional(description="Shown on the page and in status.")


class MaintenanceBody(Strict):
    """Either ``for`` (start a window that long) or ``end: true`` (end it now), not both."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["for"], "properties": {"end": {"const": False}}},
        {"required": ["end"], "properties": {"end": {"const": True}, "for": False}}]})

    for_: Duration = optional(alias="for", description="Start a window this long.")
    end: Annotated[bool, Field(description="End the window now (instead of for).")] = False

    @model_validator(mode="after")
    def _one_of(self) -> MaintenanceBody:  # the oneOf above, for the validator
        if self.end == (self.for_ is not None):
            raise ValueError("give either for (a duration) or end: true")
        return self


#: a label selector key=value[,key=value…] (core.labels' grammar)
SELECTOR_PATTERN = f"^{_TERM}(?:,{_TERM}){{0,15}}$"
WindowReason = Annotated[str, Field(pattern="^[^\x00\n\r]*$", max_length=200)]
Selector = Annotated[str, Field(pattern=SELECTOR_PATTERN, description="Components with these labels (key=value,…).")]


class MaintenanceWindowBody(Strict):
    """Recurring (``cron`` and ``duration``, in ``tz``) or one-off (``for``, from now or ``start_in``)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["cron", "duration"], "properties": {"for": False, "start_in": False}},
        {"required": ["for"], "properties": {"cron": False, "duration": False, "tz": False}}]})

    selector: Selector
    cron: Annotated[str, Field(pattern=CRON_PATTERN, description="Recurring: opens at these times ('0 2 * * SUN').")] \
        = optional()  # type: ignore[assignment]
    duration: Duration = optional(description="Recurring: how long each window lasts.")
    tz: Annotated[Literal[time_zones()], Field(description="Recurring: the time zone of cron (UTC).")] \
        = optional()  # type: ignore[assignment, valid-type]
    for_: Duration = optional(alias="for", description="One-off: this long.")
    start_in: Duration = optional(description="One-off: opens this long from now (default: now).")
    reason: WindowReason = optional(description="Shown with the hold, on the page and in reports.")

    @model_validator(mode="after")
    def _one_of(self) -> MaintenanceWindowBody:
        """The oneOf above, for the validator; InputError (not a ValueError) so the field it names is
        the one at fault, not the model's first."""
        recurring = self.cron is not None or self.duration is not None
        one_off = "for" if self.for_ is not None else "start_in" if self.start_in is not None else None
        if recurring and one_off:
            raise InputError("a recurring window (cron, duration) takes no for or start_in", field=one_off)
        if recurring and self.cron is None:
            raise InputError("required with duration (a recurring window)", field="cron")
        if recurring and self.duration is None:
            raise InputError("required with cron (e.g. 2h)", field="duration")
        if not recurring and self.tz is not None:
            raise InputError("only with cron", field="tz")
        if not recurring and self.for_ is None:
            raise InputError("required: for (one-off), or cron and duration (recurring)", field="for")
        return self


class SilenceBody(Strict):
    """A silence for ``for``, from now or ``start_in``."""

    selector: Selector
    for_: Annotated[Duration, Field(alias="for", description="How long.")]
    start_in: Duration = optional(description="Starts this long from now (default: now).")
    reason: WindowReason = optional(description="Shown in lists, on the page and in reports.")


class WindowPath(Lax):
    id: Annotated[int, Field(ge=1, le=MAX_ID, description="Window id.")]


class RecoverBody(Strict):
    plan: PlanName = optional(description="Run this plan instead of the component's own.")
    dry_run: Annotated[bool, Field(description="Only render the steps: nothing is run, recorded or sent.")] = False


class NoteBody(Strict):
    text: Annotated[NonBlankText, Field(description="The note.")]


class UpdateBody(Strict):
    message: Annotated[str, Field(pattern=NON_BLANK, max_length=MAX_MESSAGE_CHARS,
                                  description="What the incident's audience is told.")]
    state: Annotated[Literal[tuple(s.value for s in UpdateState)],  # type: ignore[valid-type]
                     Field(description="Where the incident stands.")] = UpdateState.INVESTIGATING.value
    public: Annotated[bool, Field(description="Show it on status pages and their Atom feeds.")] = False


class ResolveBody(Strict):
    reason: Annotated[str, Field(pattern=NON_BLANK, max_length=MAX_REASON_CHARS,
                                 description="Why it is closed (in its timeline and the audit log).")]


class Empty(Strict):
    """A body with nothing in it (``{}``), or no body."""
