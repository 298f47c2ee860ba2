"""Status badges for READMEs and wikis: ``/badge/NAME/status.svg`` and ``/badge/NAME/uptime/7d.svg``.

Flat two-part SVG (label | value) in the usual badge look. Cacheable for a minute, with an ETag so a
wiki re-validating it costs one small query and no body.
"""

from __future__ import annotations

import hashlib
import math
from datetime import timedelta

from flask import Blueprint, Response, request
from markupsafe import escape
from sqlalchemy import select

from orchestrator.components.views import effective_state
from orchestrator.db.models import Component
from orchestrator.reports.charts import SVG_NS
from orchestrator.reports.uptime import component_times, load_timelines, watched_until
from orchestrator.web.badge_metrics import text_width
from orchestrator.web.state import app_state

blueprint = Blueprint("badges", __name__, url_prefix="/badge")

WINDOWS_S = {"24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
MAX_AGE_S = 60
COLOURS = {"up": "#4c1", "degraded": "#dfb317", "down": "#e05d44", "flapping": "#fe7d37", "paused": "#9f9f9f",
           "maintenance": "#007ec6", "unknown": "#9f9f9f"}


#: space left and right of each text, px
PAD_PX = 6


def _width(text: str) -> int:
    """The box around ``text``: its measured glyph widths (badge_metrics) and the padding, rounded up."""
    return math.ceil(text_width(text)) + 2 * PAD_PX


def badge_svg(label: str, value: str, colour: str) -> str:
    """A flat badge; both texts are escaped, each drawn at its measured width (``textLength``)."""
    lw, vw = _width(label), _width(value)
    label_e, value_e = escape(label), escape(value)
    return (f'<svg xmlns="{SVG_NS}" width="{lw + vw}" height="20" role="img" aria-label="{label_e}: {value_e}">'
            f"<title>{label_e}: {value_e}</title>"
            f'<rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{vw}" height="20" fill="{colour}"/>'
            f'<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
            f'<text x="{lw / 2:.1f}" y="14" textLength="{lw - 2 * PAD_PX}" lengthAdjust="spacingAndGlyphs">'
            f'{label_e}</text><text x="{lw + vw / 2:.1f}" y="14" textLength="{vw - 2 * PAD_PX}" '
            f'lengthAdjust="spacingAndGlyphs">{value_e}</text></g></svg>')


def _respond(svg: str, status: int = 200) -> Response:
    etag = hashlib.sha256(svg.encode()).hexdigest()[:32]
    if status == 200 and request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = Response(svg, status=status, content_type="image/svg+xml; charset=utf-8")
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE_S}"
    return response


def _row(name: str) -> Component | None:
    with app_state().source.db.read() as session:
        return session.scalar(select(Component).where(Component.name == name))


@blueprint.get("/<name>/status.svg")
def status(name: str) -> Response:
    row = _row(name)
    if row is None:
        return _respond(badge_svg(name, "not found", COLOURS["unknown"]), 404)
    state = effective_state(row, app_state().source.clock.now())
    return _respond(badge_svg(name, state, COLOURS.get(state, COLOURS["unknown"])))


@blueprint.get("/<name>/uptime/<window>.svg")
def uptime(name: str, window: str) -> Response:
    if window not in WINDOWS_S:
        return _respond(badge_svg("uptime", f"windows: {', '.join(WINDOWS_S)}", COLOURS["unknown"]), 404)
    source = app_state().source
    now = source.clock.now()
    start = now - timedelta(seconds=WINDOWS_S[window])
    with source.db.read() as session:
        row = session.scalar(select(Component).where(Component.name == name))
        if row is None:
            return _respond(badge_svg(f"uptime {window}", "not found", COLOURS["unknown"]), 404)
        timeline = load_timelines(session, start, [row.id]).get(row.id)
    times = component_times(timeline, row.state, row.created_at, start, now,
                            watched_until(row.last_check_at, row.interval_s))
    pct = times.uptime_pct
    if pct is None:
        return _respond(badge_svg(f"uptime {window}", "no data", COLOURS["unknown"]))
    colour = COLOURS["up"] if pct >= 99.9 else (COLOURS["degraded"] if pct >= 99 else COLOURS["down"])
    text = f"{pct:.2f}%" if pct < 100 else "100%"
    return _respond(badge_svg(f"uptime {window}", text, colour))
