"""Inline SVG pictures shared by the reports and the web page: no script, no style, opens offline.

Every function takes plain data and returns :class:`markupsafe.Markup` holding one ``<svg>`` element
that parses as XML. Text from the database is escaped; colours are presentation attributes (never
``style=``), so the page's Content-Security-Policy needs no exception.

Each drawn piece also carries the figure it stands for in ``data-*`` attributes (a segment's state,
ends and seconds; a line's points; a bar piece's value), so the numbers behind a picture can be read
back exactly — by a script scraping the report, and by the tests that check them against the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

SVG_NS = "http://www.w3.org/2000/svg"
#: one colour per component state (the page's and report's badges use the same ones)
STATE_COLOURS = {"up": "#1a7f37", "degraded": "#bf8700", "down": "#cf222e", "flapping": "#fb8500",
                 "unknown": "#d0d7de", "paused": "#8c959f", "maintenance": "#0969da"}
#: states drawn on the holds lane, apart from the judged ones
HOLD_STATES = frozenset({"paused", "maintenance"})
#: one colour per degradation level
LEVEL_COLOURS = {"normal": "#1a7f37", "degraded": "#bf8700", "minimal": "#fb8500", "emergency": "#cf222e"}
NOT_JUDGED = "#eaeef2"
LINE_COLOURS = ("#0969da", "#cf222e", "#8250df", "#1a7f37")


@dataclass(frozen=True)
class Segment:
    """``state`` held from ``start`` to ``end``."""

    start: datetime
    end: datetime
    state: str


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _svg(width: float, height: float, body: str, label: str) -> Markup:
    return Markup(f'<svg xmlns="{SVG_NS}" class="chart" width="{_num(width)}" height="{_num(height)}" '
                  f'viewBox="0 0 {_num(width)} {_num(height)}" role="img" aria-label="{escape(label)}">'
                  f"<title>{escape(label)}</title>{body}</svg>")


def _axis(value: float) -> str:
    """An axis label: fewer decimals for bigger values, so it fits the margin."""
    return f"{value:.0f}" if value >= 100 else (f"{value:.1f}".removesuffix(".0") if value >= 10 else _num(value))


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def availability(segments: Sequence[Segment], start: datetime, end: datetime, *, width: float = 600,
                 height: float = 18, label: str = "availability") -> Markup:
    """A timeline bar: judged states on the top lane; paused and maintenance apart on a thin lane below.

    During a hold the top lane shows "not judged", so planned work never looks like an outage.
    """
    span = max((end - start).total_seconds(), 1e-9)
    lane, holds_y, holds_h = height * 0.7, height * 0.75, height * 0.25
    parts = [f'<rect x="0" y="0" width="{_num(width)}" height="{_num(lane)}" fill="{NOT_JUDGED}"/>']
    for seg in segments:
        x0 = max(0.0, (seg.start - start).total_seconds() / span) * width
        x1 = min(1.0, (seg.end - start).total_seconds() / span) * width
        if x1 <= x0:
            continue
        tip = f"<title>{escape(seg.state)}: {_when(seg.start)} → {_when(seg.end)}</title>"
        data = (f'data-state="{escape(seg.state)}" data-start="{_iso(seg.start)}" data-end="{_iso(seg.end)}" '
                f'data-seconds="{_num((seg.end - seg.start).total_seconds())}"')
        if seg.state in HOLD_STATES:
            parts.append(f'<rect x="{_num(x0)}" y="{_num(holds_y)}" width="{_num(x1 - x0)}" height="{_num(holds_h)}" '
                         f'fill="{STATE_COLOURS[seg.state]}" class="seg hold s-{escape(seg.state)}" {data}>{tip}</rect>')
        else:
            colour = STATE_COLOURS.get(seg.state, STATE_COLOURS["unknown"])
            parts.append(f'<rect x="{_num(x0)}" y="0" width="{_num(x1 - x0)}" height="{_num(lane)}" '
                         f'fill="{colour}" class="seg s-{escape(seg.state)}" {data}>{tip}</rect>')
    return _svg(width, height, "".join(parts), label)


def levels(segments: Sequence[Segment], start: datetime, end: datetime, *, width: float = 600,
           height: float = 12, label: str = "degradation level") -> Markup:
    """A timeline bar of a scope's published degradation level (``Segment.state`` is the level)."""
    span = max((end - start).total_seconds(), 1e-9)
    parts = [f'<rect x="0" y="0" width="{_num(width)}" height="{_num(height)}" fill="{NOT_JUDGED}"/>']
    for seg in segments:
        x0 = max(0.0, (seg.start - start).total_seconds() / span) * width
        x1 = min(1.0, (seg.end - start).total_seconds() / span) * width
        if x1 <= x0:
            continue
        parts.append(f'<rect x="{_num(x0)}" y="0" width="{_num(x1 - x0)}" height="{_num(height)}" '
                     f'fill="{LEVEL_COLOURS.get(seg.state, NOT_JUDGED)}" class="seg l-{escape(seg.state)}" '
                     f'data-level="{escape(seg.state)}" data-start="{_iso(seg.start)}" data-end="{_iso(seg.end)}" '
                     f'data-seconds="{_num((seg.end - seg.start).total_seconds())}">'
                     f"<title>{escape(seg.state)}: {_when(seg.start)} → {_when(seg.end)}</title></rect>")
    return _svg(width, height, "".join(parts), label)


def sparkline(values: Sequence[float | None], *, width: float = 120, height: float = 24,
              label: str = "latency") -> Markup:
    """A small line of ``values`` (None leaves a gap), scaled to their own maximum."""
    known = [v for v in values if v is not None]
    if not known:
        return _svg(width, height, "", f"{label}: no data")
    top = max(known) or 1.0
    step = width / max(1, len(values) - 1)
    runs: list[list[str]] = []
    current: list[str] = []
    for i, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
            continue
        current.append(f"{_num(i * step)},{_num(height - 1 - (value / top) * (height - 2))}")
    if current:
        runs.append(current)
    lines = "".join(f'<polyline points="{" ".join(run)}" fill="none" stroke="{LINE_COLOURS[0]}" stroke-width="1.5"/>'
                    for run in runs)
    return _svg(width, height, lines, f"{label}: max {top:.1f} ms")


def line_chart(series: Sequence[tuple[str, Sequence[tuple[datetime, float | None]]]], start: datetime,
               end: datetime, *, width: float = 720, height: float = 180, unit: str = "ms",
               label: str = "chart") -> Markup:
    """Lines over time with a y axis from 0 to the maximum and the window's ends on the x axis."""
    left, bottom, top_pad = 60.0, 20.0, 8.0  # the left margin holds labels like "1234.5 ms"
    plot_w, plot_h = width - left - 8, height - bottom - top_pad
    known = [v for _name, points in series for _t, v in points if v is not None]
    top = max(known, default=0.0) or 1.0
    span = max((end - start).total_seconds(), 1e-9)
    parts = [f'<line x1="{left}" y1="{_num(top_pad + plot_h)}" x2="{_num(left + plot_w)}" y2="{_num(top_pad + plot_h)}" '
             'stroke="#8c959f"/>',
             f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{_num(top_pad + plot_h)}" stroke="#8c959f"/>']
    for frac in (0.0, 0.5, 1.0):
        y = top_pad + plot_h * (1 - frac)
        parts.append(f'<text x="{left - 4}" y="{_num(y + 4)}" text-anchor="end" font-size="10" fill="#57606a">'
                     f"{escape(_axis(top * frac))} {escape(unit)}</text>")
    parts.append(f'<text x="{left}" y="{_num(height - 4)}" font-size="10" fill="#57606a">{escape(_when(start))}</text>')
    parts.append(f'<text x="{_num(left + plot_w)}" y="{_num(height - 4)}" text-anchor="end" font-size="10" '
                 f'fill="#57606a">{escape(_when(end))}</text>')
    for n, (name, points) in enumerate(series):
        colour = LINE_COLOURS[n % len(LINE_COLOURS)]
        known_points = [(t, v) for t, v in points if v is not None]
        coords = [f"{_num(left + (t - start).total_seconds() / span * plot_w)},"
                  f"{_num(top_pad + plot_h * (1 - v / top))}" for t, v in known_points]
        if coords:
            values = " ".join(f"{_iso(t)}={_num(v)}" for t, v in known_points)
            parts.append(f'<polyline points="{" ".join(coords)}" fill="none" stroke="{colour}" stroke-width="1.5" '
                         f'data-series="{escape(name)}" data-values="{values}"><title>{escape(name)}</title></polyline>')
            if len(coords) == 1:  # a line of one point draws nothing: show it as a dot
                cx, cy = coords[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
        parts.append(f'<text x="{_num(left + 8 + 90 * n)}" y="{top_pad + 10}" font-size="10" fill="{colour}">'
                     f"{escape(name)}</text>")
    parts.extend(_hover_columns(series, start, span, left, top_pad, plot_w, plot_h, unit))
    return _svg(width, height, "".join(parts), label)


def _hover_columns(series: Sequence[tuple[str, Sequence[tuple[datetime, float | None]]]], start: datetime,
                   span: float, left: float, top_pad: float, plot_w: float, plot_h: float, unit: str) -> list[str]:
    """One transparent column per time that has a value, its ``<title>`` naming every series' value there,
    so hovering anywhere above a point shows the figures (no script: the browser's own tooltip)."""
    at: dict[datetime, list[str]] = {}
    for name, points in series:
        for t, v in points:
            if v is not None:
                at.setdefault(t, []).append(f"{name} {_axis(v)} {unit}")
    times = sorted(at)
    if not times:
        return []
    xs = [left + (t - start).total_seconds() / span * plot_w for t in times]
    out = []
    for i, (t, x) in enumerate(zip(times, xs, strict=True)):
        x0 = left if i == 0 else (xs[i - 1] + x) / 2
        x1 = left + plot_w if i == len(xs) - 1 else (x + xs[i + 1]) / 2
        out.append(f'<rect class="hover" x="{_num(x0)}" y="{_num(top_pad)}" width="{_num(max(x1 - x0, 0.5))}" '
                   f'height="{_num(plot_h)}" fill="transparent"><title>{escape(_when(t))}: '
                   f'{escape(", ".join(at[t]))}</title></rect>')
    return out


def heartbeat(checks: Sequence[tuple[datetime, bool, float | None, str | None]], *, slots: int = 60,
              width: float = 600, height: float = 20, label: str = "last checks") -> Markup:
    """The last ``slots`` checks, oldest left, one bar each (green passed, red failed), each with a
    ``<title>`` of its time, outcome, latency and error; empty slots on the left until there are enough."""
    step = width / slots
    parts = []
    for i, (at, ok, latency_ms, error) in enumerate(checks[-slots:]):
        x = (slots - min(len(checks), slots) + i) * step
        tip = f"{_when(at)} · {'passed' if ok else 'failed'}"
        if latency_ms is not None:
            tip += f" · {_axis(latency_ms)} ms"
        if error:
            tip += f" · {error}"
        parts.append(f'<rect x="{_num(x + 1)}" y="0" width="{_num(max(step - 2, 1))}" height="{_num(height)}" rx="1" '
                     f'fill="{STATE_COLOURS["up" if ok else "down"]}" class="beat {"ok" if ok else "failed"}" '
                     f'data-at="{_iso(at)}"><title>{escape(tip)}</title></rect>')
    return _svg(width, height, "".join(parts), label if checks else f"{label}: none yet")


def stacked_bars(rows: Sequence[tuple[str, Sequence[tuple[str, float, str]]]], *, width: float = 720,
                 bar_height: float = 16, label: str = "bars") -> Markup:
    """One horizontal bar per row, split into (part, value, colour) pieces; scaled to the largest row."""
    left, gap = 140.0, 6.0
    largest = max((sum(v for _p, v, _c in parts) for _name, parts in rows), default=0.0) or 1.0
    body = []
    for i, (name, parts) in enumerate(rows):
        y = i * (bar_height + gap)
        body.append(f'<text x="{left - 6}" y="{_num(y + bar_height - 4)}" text-anchor="end" font-size="11" '
                    f'fill="#1f2328">{escape(name)}</text>')
        x = left
        for part, value, colour in parts:
            w = value / largest * (width - left - 60)
            if w > 0:
                body.append(f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(bar_height)}" '
                            f'fill="{colour}" data-row="{escape(name)}" data-part="{escape(part)}" '
                            f'data-value="{_num(value)}"><title>{escape(name)}: {escape(_num(value))} {escape(part)}</title></rect>')
            x += w
        total = sum(v for _p, v, _c in parts)
        body.append(f'<text x="{_num(x + 4)}" y="{_num(y + bar_height - 4)}" font-size="11" fill="#57606a">'
                    f"{escape(_num(total))}</text>")
    return _svg(width, max(bar_height, len(rows) * (bar_height + gap)), "".join(body), label)
