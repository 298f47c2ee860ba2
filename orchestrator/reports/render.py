"""Render a :class:`~orchestrator.reports.model.Report` as HTML, Markdown, JSON or CSV.

HTML and Markdown come from Jinja2 templates in ``templates/`` with StrictUndefined. HTML is
autoescaped; in Markdown every printed value passes through :func:`md_cell`, so text from the database
(a reason, an output) can neither break a table nor smuggle in HTML.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.reports import charts
from orchestrator.reports.model import REPORT_VERSION, Report

if TYPE_CHECKING:
    from jinja2 import Environment

FORMATS = ("html", "markdown", "json", "csv")
#: CSV cells starting with these are formulas to a spreadsheet: prefixed with ' so they stay text
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: incidents shown with their steps in HTML and Markdown, newest first (the table lists them all; JSON and
#: CSV have every one): 10,000 detailed incidents made an 11 MB page nobody reads to the end
MAX_DETAILED_INCIDENTS = 200
CSV_COLUMNS = ("id", "component", "kind", "status", "resolution", "opened_at", "resolved_at", "duration_s",
               "escalated", "plan", "reason", "steps", "actions_executed", "actions_verified", "notifications")


def human_duration(seconds: float | None) -> str:
    """``3725`` → ``1h 2m``: the largest unit and the next one when not zero; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 and seconds != int(seconds) else f"{seconds:.0f}s"
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    rest = int(round(seconds))
    first = next(i for i, (_unit, size) in enumerate(units) if rest >= size)
    (big, big_s), (small, small_s) = units[first], units[first + 1]
    text = f"{rest // big_s}{big}"
    return text if rest % big_s < small_s else f"{text} {rest % big_s // small_s}{small}"


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}%".replace(".000%", "%")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def md_cell(value: Any) -> Any:
    """A value made safe for a Markdown table cell: no line breaks, pipes or HTML."""
    if not isinstance(value, str):
        return value
    for old, new in (("\\", "\\\\"), ("|", "\\|"), ("`", "\\`"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        value = value.replace(old, new)
    return " ".join(value.split())


def md_url(url: str) -> str:
    """A link target for Markdown: characters that could end the link or break the table percent-encoded
    (what is left passes :func:`md_cell` unchanged but for ``&``, which Markdown reads back)."""
    from urllib.parse import quote

    return quote(url, safe=":/?#[]@!$&'*+,;=%~")


def latency_series(points) -> list[tuple[str, list[tuple[datetime, float | None]]]]:
    """The latency chart's two lines (p50, p95) from :class:`~orchestrator.reports.figures.LatencyPoint` s."""
    return [("p50", [(p.start, p.p50_ms) for p in points]), ("p95", [(p.start, p.p95_ms) for p in points])]


def mttr_rows(points, bucket_s: int):
    """One bar per period: its mean time to recover, in seconds."""
    fmt = "%Y-%m-%d" if bucket_s >= 86400 else "%m-%d %H:%M"
    return [(f"{p.start.strftime(fmt)} ({p.resolved})", [("s MTTR", p.mttr_s or 0.0, "#0969da")]) for p in points]


def strategy_rows(strategies):
    """One bar per strategy: succeeded, failed, other executed attempts."""
    return [(s.strategy, [("succeeded", s.succeeded, "#1a7f37"), ("failed", s.failed, "#cf222e"),
                          ("other", s.executed - s.succeeded - s.failed, "#8c959f")]) for s in strategies]


def register_filters(env: Environment) -> None:
    """The filters and chart functions report templates use (the web app's environment gets them too)."""
    env.filters.update(duration=human_duration, when=_when, pct=_pct, ms=_ms)
    env.globals.update(charts=charts, bucket_label=human_duration, latency_series=latency_series,
                       mttr_rows=mttr_rows, strategy_rows=strategy_rows, max_detailed=MAX_DETAILED_INCIDENTS)


def _environment(**options: Any) -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined  # on first report, not in the daemon

    env = Environment(loader=PackageLoader("orchestrator.reports", "templates"), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, **options)
    register_filters(env)
    return env


def render_html(report: Report, *, css_href: str | None = None, env: Environment | None = None,
                **page: Any) -> str:
    """One self-contained HTML file (styles inline, pictures as inline SVG); ``css_href`` links the
    styles instead (the web page, whose Content-Security-Policy forbids inline styles). ``page`` is
    passed to the template for the web page's controls."""
    env = env or _environment(autoescape=True)
    return env.get_template("report.html.j2").render(r=report, css_href=css_href, page=page or None)


def render_markdown(report: Report) -> str:
    env = _environment(autoescape=False, finalize=md_cell)
    env.filters["md_url"] = md_url
    return env.get_template("report.md.j2").render(r=report)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def report_dict(report: Report) -> dict[str, Any]:
    """The stable JSON shape, documented in :mod:`orchestrator.reports`."""
    totals = asdict(report.totals)
    totals["by_resolution"] = dict(report.totals.by_resolution)
    components = []
    for c in report.components:
        item = asdict(c)
        item["labels"] = dict(c.labels)
        item["time_s"] = {k.removesuffix("_s"): round(v, 3) for k, v in item.pop("times").items()}
        item["uptime_pct"] = None if c.uptime_pct is None else round(c.uptime_pct, 4)
        components.append(item)
    incidents = []
    for i in report.incidents:
        item = asdict(i)
        item.pop("component_id")
        item["duration_s"] = round(i.duration_s, 3)
        incidents.append(item)
    return _plain({
        "figures": asdict(report.figures) if report.figures is not None else None,
        "version": REPORT_VERSION, "generated_at": report.generated_at, "since": report.since,
        "until": report.until, "window_s": report.window_s, "component": report.component,
        "totals": totals, "components": components, "incidents": incidents, "windows": list(report.windows),
    })


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2) + "\n"


def _csv_safe(value: Any) -> Any:
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def render_csv(report: Report) -> str:
    """One row per incident (steps counted, not listed: `incidents show` or the JSON has them)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for i in report.incidents:
        writer.writerow([_csv_safe(v) for v in (
            i.id, i.component or "", i.kind, i.status, i.resolution or "", i.opened_at.isoformat(),
            i.resolved_at.isoformat() if i.resolved_at else "", f"{i.duration_s:.3f}", str(i.escalated).lower(),
            i.plan or "", i.reason or "", len(i.steps), sum(s.executed for s in i.steps),
            sum(s.verified for s in i.steps), i.notifications)])
    return out.getvalue()


RENDERERS = {"html": render_html, "markdown": render_markdown, "json": render_json, "csv": render_csv}


def render(report: Report, fmt: str) -> str:
    """The report as text in ``fmt`` (one of :data:`FORMATS`)."""
    return RENDERERS[fmt](report)
