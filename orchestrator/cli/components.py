"""`orchestrator component ...`: register, inspect, change, pause and remove components."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.output import print_fields, print_json, print_table
from orchestrator.cli.params import DURATION, KEY_VALUE, NAME, KeyValueType, fields_as_flags
from orchestrator.core.clock import SYSTEM_CLOCK
from orchestrator.core.defaults import (
    DEFAULT_FAILURE_THRESHOLD,
    DEFAULT_INTERVAL_S,
    DEFAULT_MAX_PROBE_INTERVAL_S,
    DEFAULT_RETRY_INTERVAL_S,
    DEFAULT_SUCCESS_THRESHOLD,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TLS_CRITICAL_DAYS,
    DEFAULT_TLS_WARN_DAYS,
    MAX_PROBE_INTERVALS,
    MAX_REPLICAS,
    default_timeout_s,
)
from orchestrator.core.durations import format_duration
from orchestrator.core.errors import InputError
from orchestrator.core.states import Criticality

if TYPE_CHECKING:  # the database and the pydantic definition load when a command uses them
    from orchestrator.components.registry import Registry

# Definition keys (as in ComponentSpec.definition()) → the flag that sets them, for error messages.
FLAG_FOR = {
    "interval": "--interval", "interval_s": "--interval", "timeout": "--timeout", "timeout_s": "--timeout",
    "retry_interval": "--retry-interval", "retry_interval_s": "--retry-interval",
    "max_probe_interval": "--max-probe-interval", "max_probe_interval_s": "--max-probe-interval",
    "failure_threshold": "--failure-threshold", "success_threshold": "--success-threshold",
    "plan": "--plan", "depends_on": "--depends-on", "criticality": "--criticality", "labels": "--label",
    "vars": "--var", "secret_vars": "--secret-var", "backup_url": "--backup-url", "url": "--url", "check": "--url", "check.url": "--url",
    "expect_status": "--expect-status", "check.expect_status": "--expect-status",
    "name": "NAME", "min_replicas": "--min-replicas", "max_replicas": "--max-replicas", "replicas": "--replicas",
    "early_warning": "--early-warning",
    "check.method": "--method", "check.headers": "--header", "check.body_contains": "--body-contains",
    "check.json_conditions": "--json-condition", "check.max_latency_ms": "--max-latency",
    "check.verify_tls": "--tls-verify", "check.max_redirects": "--max-redirects",
    "check.tls_ca": "--tls-ca", "check.tls_warn_days": "--tls-warn-days",
    "check.tls_critical_days": "--tls-critical-days",
    "push": "--push", "push.period": "--period", "push.schedule": "--schedule", "push.tz": "--tz",
    "push.grace": "--grace", "check.period_s": "--period", "check.schedule": "--schedule", "check.tz": "--tz",
    "check.grace_s": "--grace", "check.kind": "--push",
}
#: the push monitor's flags (``--push``), as the apply file's ``push:`` section names them
PUSH_FLAGS = ("period", "schedule", "tz", "grace")
#: where the ping URLs point when neither --base-url nor public_url is set (`run --http`'s usual address)
DEFAULT_PING_BASE = "http://127.0.0.1:8765"
#: ``--flag`` destinations that are settings of the HTTP check (CheckSpec fields), as the apply file's
#: ``check:`` section names them.
CHECK_FLAGS = ("method", "headers", "body_contains", "json_conditions", "max_latency_ms", "verify_tls",
               "max_redirects", "tls_ca", "tls_warn_days", "tls_critical_days")


def _flag(path: str) -> str:
    if path.startswith("early_warning."):  # name the setting too: "--early-warning k"
        return f"--early-warning {path.split('.', 1)[1]}"
    for field in CHECK_FLAGS:  # "check.headers.X-Probe", "check.json_conditions[1]" name the flag too
        if path.startswith(f"check.{field}"):
            return FLAG_FOR[f"check.{field}"]
    return FLAG_FOR.get(path) or FLAG_FOR.get(path.split(".")[0].split("[")[0], path)


#: names fields in errors as the flags the operator typed (``depends_on`` → ``--depends-on``)
flag_errors = fields_as_flags(_flag)


#: an HTTP header name (RFC 9110 token)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class HeaderType(KeyValueType):
    """``Name: value`` as curl takes it; ``Name:`` (nothing after the colon) drops the header on update."""

    name = "Name:value (a header name of letters, digits and -)"
    separator = ":"

    def key_ok(self, key: str) -> bool:
        return bool(_HEADER_NAME.match(key.strip()))

    def pair(self, key: str, val: str) -> tuple[str, str]:
        return key.strip(), val.strip()


class OptionalFile(click.Path):
    """An existing readable file, as an absolute path; ``''`` (to drop a setting on update) passes as is."""

    def __init__(self) -> None:
        super().__init__(exists=True, dir_okay=False, readable=True, resolve_path=True)

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        return "" if value == "" else super().convert(value, param, ctx)


def definition_options(required_url: bool):
    """The flags shared by `add` and `update` (update: every flag optional, None = unchanged)."""
    opts = [
        click.option("--url", help="Health endpoint (http or https); required unless --push."),
        *([click.option("--push", is_flag=True, default=None,
                        help="A heartbeat monitor: the job pings its URL; late after --period or --schedule "
                             "+ --grace (docs/push.md).")] if required_url else []),
        click.option("--period", type=DURATION, help="Push: a success is expected every (e.g. 1d)."),
        click.option("--schedule", help='Push: a success is expected at each run of this cron schedule '
                                        '("0 3 * * *").'),
        click.option("--tz", help="Push: the schedule's time zone (UTC), e.g. Europe/Berlin."),
        click.option("--grace", type=DURATION, help="Push: late this long after the expected success (1h)."),
        click.option("--interval", type=DURATION, help=f"Check every ({format_duration(DEFAULT_INTERVAL_S)})."),
        click.option("--timeout", type=DURATION, help=f"Give up a check after; < interval (min("
                                                      f"{format_duration(DEFAULT_TIMEOUT_S)}, interval/2))."),
        click.option("--failure-threshold", type=click.IntRange(1, 100),
                     help=f"Failures in a row to go DOWN ({DEFAULT_FAILURE_THRESHOLD})."),
        click.option("--success-threshold", type=click.IntRange(1, 100),
                     help=f"Successes in a row to go UP ({DEFAULT_SUCCESS_THRESHOLD})."),
        click.option("--retry-interval", type=DURATION, help="Re-check after a first failure (min("
                                                             f"{format_duration(DEFAULT_RETRY_INTERVAL_S)}, interval/5))."),
        click.option("--max-probe-interval", type=DURATION,
                     help=f"Longest wait between probes while DOWN; >= interval (min("
                          f"{format_duration(DEFAULT_MAX_PROBE_INTERVAL_S)}, {MAX_PROBE_INTERVALS} x interval))."),
        click.option("--plan", type=NAME, help="Recovery plan from recovery_strategies.json."),
        click.option("--depends-on", "depends_on", type=NAME, multiple=True, help="A component this one needs."),
        click.option("--criticality", type=click.Choice([c.value for c in Criticality])),
        click.option("--expect-status", multiple=True, help="Healthy status codes or ranges (200-299)."),
        click.option("--method", type=click.Choice(["GET", "HEAD", "POST", "PUT", "OPTIONS"], case_sensitive=False),
                     help="HTTP method of the check (GET)."),
        click.option("--header", "headers", type=HeaderType(), multiple=True,
                     help="Request header Name:value, repeatable (update: Name: drops it)."),
        click.option("--body-contains", help="Healthy only if the body contains this text ('' drops it)."),
        click.option("--json-condition", "json_conditions", multiple=True,
                     help='Condition on the JSON body, repeatable, all must hold: \'$.status == "UP"\' '
                          "(update: replaces the list; '' clears it)."),
        click.option("--max-latency", "max_latency", type=DURATION,
                     help="Unhealthy if the answer takes longer (e.g. 500ms)."),
        click.option("--tls-verify/--no-tls-verify", "verify_tls", default=None,
                     help="Verify the server's TLS certificate (yes)."),
        click.option("--max-redirects", type=click.IntRange(0, 10), help="Redirects followed at most (see docs)."),
        click.option("--tls-ca", "tls_ca", type=OptionalFile(),
                     help="PEM file of a private CA to trust for this https check, besides the system's "
                          "('' drops it on update)."),
        click.option("--tls-warn-days", type=click.FloatRange(0, 3650),
                     help=f"Degraded when the certificate expires within this many days ({DEFAULT_TLS_WARN_DAYS:g})."),
        click.option("--tls-critical-days", type=click.FloatRange(0, 3650),
                     help=f"Down (an incident) when it expires within this many days ({DEFAULT_TLS_CRITICAL_DAYS:g})."),
        click.option("--label", "labels", type=KEY_VALUE, multiple=True, help="k=v, repeatable."),
        click.option("--var", "vars_", type=KEY_VALUE, multiple=True, help="k=v for {vars.k} in plans."),
        click.option("--secret-var", "secret_vars", type=KEY_VALUE, multiple=True,
                     help="k=v like --var, but the value is never shown, logged or sent (or ${env:NAME})."),
        click.option("--backup-url", help="Standby endpoint for failover."),
        click.option("--replicas", type=click.IntRange(0, MAX_REPLICAS), help="Current replicas (scale strategies)."),
        click.option("--min-replicas", type=click.IntRange(0, MAX_REPLICAS)),
        click.option("--max-replicas", type=click.IntRange(0, MAX_REPLICAS)),
        click.option("--early-warning", "early_warning", type=KEY_VALUE, multiple=True,
                     help="Early-warning setting k=v, repeatable (k=6, latency_floor_ms=200, enabled=false; "
                          "k= restores the default). See docs/degradation.md."),
    ]

    def decorate(fn):
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return decorate


def _changes(flags: dict[str, Any]) -> dict[str, Any]:
    """Flags given → definition keys (spec field names for add; merged into the stored definition)."""
    out: dict[str, Any] = {}
    for key in ("interval", "timeout", "retry_interval", "max_probe_interval", "failure_threshold", "success_threshold", "plan",
                "criticality", "backup_url", "replicas", "min_replicas", "max_replicas"):
        if flags.get(key) is not None:
            out[key] = flags[key]
    if flags.get("depends_on"):
        out["depends_on"] = list(flags["depends_on"])
    if flags.get("labels"):
        out["labels"] = dict(flags["labels"])
    if flags.get("vars_"):
        out["vars"] = dict(flags["vars_"])
    if flags.get("secret_vars"):
        out["secret_vars"] = dict(flags["secret_vars"])
    if flags.get("url") is not None:
        out["url"] = flags["url"]
    if flags.get("expect_status"):
        out["expect_status"] = list(flags["expect_status"])
    if flags.get("early_warning"):
        out["early_warning"] = dict(flags["early_warning"])
    check = _check_changes(flags)
    if check:
        out["check"] = check
    pushed = {key: flags[key] for key in PUSH_FLAGS if flags.get(key) is not None}
    if flags.get("push"):
        out["push"] = pushed
    elif pushed:
        out["push_changes"] = pushed
    return out


def _merge_push(current: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A push monitor's stored check after `update --period/--schedule/--tz/--grace`: a period replaces
    a schedule (and its time zone), a schedule replaces a period."""
    if current.get("kind") != "push":
        raise InputError("only a push monitor has a period, schedule, tz or grace", field="--" + next(iter(given)))
    merged = {**current}
    if "period" in given:
        merged.pop("schedule", None)
        merged.pop("tz", None)
        merged["period_s"] = given["period"]
    if "schedule" in given:
        merged.pop("period_s", None)
        merged["schedule"] = given["schedule"]
    if "tz" in given:
        merged["tz"] = given["tz"]
    if "grace" in given:
        merged["grace_s"] = given["grace"]
    return merged


def _check_changes(flags: dict[str, Any]) -> dict[str, Any]:
    """The check flags given, as ``check:`` keys of the apply file."""
    out: dict[str, Any] = {}
    if flags.get("method") is not None:
        out["method"] = flags["method"].upper()
    if flags.get("headers"):
        out["headers"] = dict(flags["headers"])
    if flags.get("body_contains") is not None:
        out["body_contains"] = flags["body_contains"] or None
    if flags.get("json_conditions"):
        out["json_conditions"] = [c for c in flags["json_conditions"] if c.strip()]
    if flags.get("max_latency") is not None:
        out["max_latency_ms"] = flags["max_latency"] * 1000
    for key in ("verify_tls", "max_redirects", "tls_warn_days", "tls_critical_days"):
        if flags.get(key) is not None:
            out[key] = flags[key]
    if flags.get("tls_ca") is not None:
        out["tls_ca"] = flags["tls_ca"] or None
    return out


def _merge_early_warning(current: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    """Overrides after ``--early-warning k=v`` flags: set the given keys; ``k=`` drops the override."""
    merged = {**current, **given}
    return {key: value for key, value in merged.items() if value != ""}


def _merge_check(current: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The stored check after ``update``'s check flags: headers merge (``Name:`` drops one), the rest
    replace; a value cleared (``--body-contains ''``) falls back to the default."""
    merged = {**current}
    for key, value in given.items():
        if key == "headers":
            headers = {**current.get("headers", {}), **value}
            merged["headers"] = {k: v for k, v in headers.items() if v}
        elif value is None or value == []:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _registry(app: AppContext, need_plans: bool) -> Registry:
    from orchestrator.components.registry import Registry

    db = app.database()
    return Registry(db, plan_names=app.plan_names() if need_plans else None)


@click.group()
def component() -> None:
    """Register and manage components."""


@component.command("add")
@click.argument("name", type=NAME)
@definition_options(required_url=True)
@pass_app
@flag_errors
def add(app: AppContext, name: str, **flags: Any) -> None:
    """Register a component."""
    changes = _changes(flags)
    if "push_changes" in changes:
        raise InputError("only with --push", field="--" + next(iter(changes["push_changes"])))
    if "early_warning" in changes:
        changes["early_warning"] = _merge_early_warning({}, changes["early_warning"])
    if "headers" in changes.get("check", {}):  # "Name:" means "no such header", nothing to drop on add
        changes["check"]["headers"] = {k: v for k, v in changes["check"]["headers"].items() if v}
    from pydantic import ValidationError

    from orchestrator.components.definition import ComponentSpec
    from orchestrator.core.validation import first_error

    try:
        spec = ComponentSpec(name=name, **changes)
    except ValidationError as exc:
        raise first_error(exc, rename=_flag) from None
    _registry(app, need_plans=spec.plan is not None).add(spec)
    click.echo(f"added {name}")
    if spec.push is not None:
        click.echo(f"its ping URL: orchestrator component ping-url {name}")


@component.command("update")
@click.argument("name", type=NAME)
@definition_options(required_url=False)
@pass_app
@flag_errors
def update(app: AppContext, name: str, **flags: Any) -> None:
    """Change a component's definition (only the flags given). --label/--var set the given keys."""
    changes = _changes(flags)
    if not changes:
        raise InputError("nothing to change: give at least one flag", field="update")
    both = sorted(set(changes.get("vars", {})) & set(changes.get("secret_vars", {})))
    if both:
        raise InputError(f"{both[0]!r} is also given with --var (give it once)", field="--secret-var")
    registry = _registry(app, need_plans="plan" in changes)

    def edit(current: dict[str, Any]) -> dict[str, Any]:
        # A timeout left at its default follows a new interval, as it would have on `add`.
        if "interval" in changes and "timeout" not in changes \
                and current["timeout_s"] == default_timeout_s(current["interval_s"]):
            current["timeout_s"] = default_timeout_s(changes["interval"])
        for key, value in changes.items():
            if key in ("interval", "timeout", "retry_interval", "max_probe_interval"):
                current[f"{key}_s"] = value
            elif key in ("labels", "vars", "secret_vars"):
                current[key] = {**current[key], **value}
                # a var given as secret stops being plain, and the other way round
                other = {"vars": "secret_vars", "secret_vars": "vars"}.get(key)
                if other:
                    current[other] = {k: v for k, v in current[other].items() if k not in value}
            elif key in ("url", "expect_status"):
                current["check"] = {**current["check"], key: value}
            elif key == "check":
                current["check"] = _merge_check(current["check"], value)
            elif key == "push_changes":
                current["check"] = _merge_push(current["check"], value)
            elif key == "early_warning":
                current[key] = _merge_early_warning(current[key], value)
            else:
                current[key] = value
        return current

    change = registry.update(name, edit, field_names=_flag)
    click.echo(f"updated {name}" if change.action == "update" else f"{name} unchanged")


@component.command("remove")
@click.argument("name", type=NAME)
@pass_app
def remove(app: AppContext, name: str) -> None:
    """Remove a component (its history stays in incidents)."""
    _registry(app, need_plans=False).remove(name)
    click.echo(f"removed {name}")


@component.command("pause")
@click.argument("name", type=NAME)
@click.option("--for", "duration", type=DURATION, help="How long (default: until resumed).")
@click.option("--reason", help="Why, for the record.")
@pass_app
def pause(app: AppContext, name: str, duration: float | None, reason: str | None) -> None:
    """Stop acting on a component (checks continue and are recorded; no incidents)."""
    from orchestrator.components.registry import INDEFINITELY

    until = SYSTEM_CLOCK.now() + timedelta(seconds=duration) if duration else INDEFINITELY
    _registry(app, need_plans=False).set_hold(name, paused_until=until, reason=reason, pause=True)
    click.echo(f"paused {name}" + (f" until {until.isoformat(timespec='seconds')}" if duration else ""))


@component.command("resume")
@click.argument("name", type=NAME)
@pass_app
def resume(app: AppContext, name: str) -> None:
    """Undo `pause`."""
    _registry(app, need_plans=False).set_hold(name, paused_until=None, reason=None, pause=False)
    click.echo(f"resumed {name}")


@component.command("maintenance")
@click.argument("name", type=NAME)
@click.option("--for", "duration", type=DURATION, help="How long the window lasts.")
@click.option("--end", is_flag=True, help="End the maintenance window now.")
@pass_app
def maintenance(app: AppContext, name: str, duration: float | None, end: bool) -> None:
    """Planned work: checks are recorded, no incidents are opened and nothing is recovered."""
    if end == (duration is not None):
        raise InputError("give either --for DURATION or --end", field="--for")
    until = None if end else SYSTEM_CLOCK.now() + timedelta(seconds=duration)
    _registry(app, need_plans=False).set_operational(name, "maintenance-end" if end else "maintenance",
                                                     maintenance_until=until)
    click.echo(f"{name}: maintenance " + ("ended" if end else f"until {until.isoformat(timespec='seconds')}"))


@component.command("failback")
@click.argument("name", type=NAME)
@pass_app
def failback(app: AppContext, name: str) -> None:
    """Switch a failed-over component back to its primary endpoint."""
    _registry(app, need_plans=False).failback(name)
    click.echo(f"{name}: checked at its primary endpoint again")


def _views(app: AppContext, name: str | None = None) -> list[dict[str, Any]]:
    from orchestrator.components.views import component_views

    with app.database().read() as session:
        return component_views(session, SYSTEM_CLOCK.now(), name)


@component.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """List components."""
    from orchestrator.components.views import push_schedule_text

    views = _views(app)
    if as_json:
        print_json(views)
        return
    print_table(
        ["NAME", "STATE", "URL", "INTERVAL", "PLAN", "DEPENDS ON", "CRITICALITY", "LABELS"],
        [(v["name"], v["state"], push_schedule_text(v) if v["push"] else v["url"], f"{v['interval_s']:g}s",
          v["plan"], v["depends_on"],
          v["criticality"], v["labels"]) for v in views],
    )


@component.command("show")
@click.argument("name", type=NAME)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show(app: AppContext, name: str, as_json: bool) -> None:
    """Show one component (a push monitor's ping URL included: for an operator's eyes only)."""
    view = _views(app, name)[0]
    if view["kind"] == "push":
        view["ping_url"] = _ping_url(app, name, None)
    if as_json:
        print_json(view)
        return
    print_fields(view.items())


def _ping_url(app: AppContext, name: str, base_url: str | None) -> str:
    from sqlalchemy import select

    from orchestrator.db.models import Component, PushMonitor

    with app.database().read() as session:
        token = session.scalar(select(PushMonitor.token).join(Component, Component.id == PushMonitor.component_id)
                               .where(Component.name == name))
    if token is None:
        raise InputError(f"{name!r} is not a push monitor (add it with --push)", field="NAME")
    base = (base_url or app.public_url or DEFAULT_PING_BASE).rstrip("/")
    return f"{base}/ping/{token}"


@component.command("ping-url")
@click.argument("name", type=NAME)
@click.option("--base-url", help=f"The web server's address as the job reaches it (public_url, else "
                                 f"{DEFAULT_PING_BASE}).")
@pass_app
def ping_url(app: AppContext, name: str, base_url: str | None) -> None:
    """Print a push monitor's ping URL (its token is the secret: give it to the job only)."""
    if base_url is not None:
        from orchestrator.core.check_spec import validate_http_url

        try:
            validate_http_url(base_url)
        except ValueError as exc:
            raise InputError(str(exc), field="--base-url") from None
    _views(app, name)  # an unknown name is "no component named ..."
    click.echo(_ping_url(app, name, base_url))
