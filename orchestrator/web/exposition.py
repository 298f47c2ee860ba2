"""The Prometheus text format for ``/metrics``, with a fast path for the per-component families.

prometheus_client's generic writer builds a ``Sample`` for every series and escapes every label name and
value of every sample again: at 10,000 components (70,000 state series, 30,000 breaker series, 20,000
check counters) that was two thirds of a 6 s scrape. A :class:`ComponentFamily` keeps its series as
compact rows, ``(component, ((label value, value), ...))``, and writes them with each component's label
text escaped once. Every other family goes through prometheus_client's own ``generate_latest``.

The bytes are the same as ``generate_latest`` writes for the same families (tests compare them), and a
ComponentFamily's ``samples`` are ordinary Samples, so anything else that reads the registry still works.
:class:`ComponentHistogramFamily` does the same for one histogram per component. OpenMetrics (asked for
by Prometheus) goes through prometheus_client's own writer over the same families: :func:`openmetrics`.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

#: the last line of an OpenMetrics exposition
EOF = "# EOF\n"
#: the label every ComponentFamily is keyed by (it sorts before the second label, as generate_latest orders them)
COMPONENT_LABEL = "component"
Pairs = tuple[tuple[str, float], ...]


def escape_label_value(value: str) -> str:
    """A label value as the text format quotes it (backslash, newline and double quote escaped)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class ComponentFamily(Metric):
    """A gauge or counter family labelled ``component`` and at most one more label, with many series."""

    def __init__(self, name: str, documentation: str, typ: str, label: str | None = None) -> None:
        if typ not in ("gauge", "counter") or (label is not None and label <= COMPONENT_LABEL):
            raise ValueError(f"{name}: a gauge or counter whose second label sorts after {COMPONENT_LABEL!r}")
        super().__init__(name, documentation, typ)
        self.label = label
        self.rows: list[tuple[str, Pairs]] = []

    @property
    def sample_name(self) -> str:
        return f"{self.name}_total" if self.type == "counter" else self.name

    def add(self, component: str, pairs: Pairs) -> None:
        """One component's series: ``(value of the second label, value)`` each, in label order."""
        self.rows.append((component, pairs))

    def add_value(self, component: str, value: float) -> None:
        """One component's only series (a family with no second label)."""
        self.rows.append((component, (("", value),)))

    @property
    def samples(self) -> list[Sample]:  # type: ignore[override]  # read-only: built from the rows
        name, label = self.sample_name, self.label
        if label is None:
            return [Sample(name, {COMPONENT_LABEL: c}, n) for c, pairs in self.rows for _v, n in pairs]
        return [Sample(name, {COMPONENT_LABEL: c, label: v}, n) for c, pairs in self.rows for v, n in pairs]

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        if value:  # Metric.__init__ assigns an empty list; anything else must go through add()
            raise TypeError("ComponentFamily takes series through add()")

    def write(self, out: list[str], labels: dict[str, str], *, om: bool = False) -> None:
        """Append this family's text (HELP, TYPE, one line a series) to ``out``; ``labels`` caches the
        escaped component names across families; ``om``: OpenMetrics' header (the family's own name)."""
        name = self.sample_name
        out.append(_header(self.name if om else name, self.documentation, self.type, om))
        tails: dict[Pairs, list[str]] = {}  # equal rows (every one-hot row of a state) share their line endings
        for component, pairs in self.rows:
            ends = tails.get(pairs)
            if ends is None:
                ends = tails[pairs] = (
                    [f"}} {floatToGoString(n)}\n" for _v, n in pairs] if self.label is None else
                    [f'{escape_label_value(v)}"}} {floatToGoString(n)}\n' for v, n in pairs])
            head = f'{name}{{{COMPONENT_LABEL}="{_escaped(component, labels)}"'
            if self.label is not None:
                head += f',{self.label}="'
            out.append(head + head.join(ends))  # head end0 head end1 ...: one line per pair


class ComponentHistogramFamily(Metric):
    """A histogram family labelled ``component`` (and ``le``), one histogram per component."""

    def __init__(self, name: str, documentation: str, bounds: tuple[float, ...]) -> None:
        super().__init__(name, documentation, "histogram")
        self.les = (*map(str, bounds), "+Inf")
        self.rows: list[tuple[str, list[int], float]] = []

    def add(self, component: str, cumulative: list[int], sum_value: float) -> None:
        """One component's histogram: the running counts, one per bound and +Inf last, and the sum."""
        self.rows.append((component, cumulative, sum_value))

    @property
    def samples(self) -> list[Sample]:  # type: ignore[override]  # read-only: built from the rows
        out, name = [], self.name
        for component, cumulative, total in self.rows:
            out += [Sample(f"{name}_bucket", {COMPONENT_LABEL: component, "le": le}, n)
                    for le, n in zip(self.les, cumulative, strict=True)]
            out += [Sample(f"{name}_count", {COMPONENT_LABEL: component}, cumulative[-1]),
                    Sample(f"{name}_sum", {COMPONENT_LABEL: component}, total)]
        return out

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        if value:
            raise TypeError("ComponentHistogramFamily takes histograms through add()")

    def write(self, out: list[str], labels: dict[str, str], *, om: bool = False) -> None:
        """Like :meth:`ComponentFamily.write`: the bytes generate_latest writes for the same samples."""
        name = self.name
        out.append(_header(name, self.documentation, "histogram", om))
        bucket_ends = [f'",le="{le}"}} ' for le in self.les]
        for component, cumulative, total in self.rows:
            text = _escaped(component, labels)
            head = f'{name}_bucket{{{COMPONENT_LABEL}="{text}'
            out.extend(f"{head}{end}{floatToGoString(n)}\n" for end, n in zip(bucket_ends, cumulative, strict=True))
            out.append(f'{name}_count{{{COMPONENT_LABEL}="{text}"}} {floatToGoString(cumulative[-1])}\n'
                       f'{name}_sum{{{COMPONENT_LABEL}="{text}"}} {floatToGoString(total)}\n')


def _header(name: str, documentation: str, typ: str, om: bool = False) -> str:
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    if om:  # OpenMetrics escapes double quotes in HELP too
        doc = doc.replace('"', r'\"')
    return f"# HELP {name} {doc}\n# TYPE {name} {typ}\n"


def _escaped(component: str, labels: dict[str, str]) -> str:
    text = labels.get(component)
    if text is None:
        text = labels[component] = escape_label_value(component)
    return text


class _One:
    """A registry of one family, for generate_latest."""

    def __init__(self, family: Metric) -> None:
        self.family = family

    def collect(self) -> list[Metric]:
        return [self.family]


def exposition(families: Iterable[Metric]) -> bytes:
    """The families in the text format (0.0.4), in order: the same bytes as ``generate_latest``."""
    out: list[str] = []
    labels: dict[str, str] = {}
    for family in families:
        if isinstance(family, ComponentFamily | ComponentHistogramFamily):
            family.write(out, labels)
        else:
            out.append(generate_latest(_One(family)).decode("utf-8"))
    return "".join(out).encode("utf-8")


def openmetrics(families: Iterable[Metric]) -> bytes:
    """The families in OpenMetrics 1.0.0 (for a scraper that asks for it): the same bytes as
    prometheus_client's OpenMetrics ``generate_latest``. A series line is written exactly as in the text
    format; only a family's header names the family (a counter without ``_total``) and the text ends
    with ``# EOF``."""
    out: list[str] = []
    labels: dict[str, str] = {}
    for family in families:
        if isinstance(family, ComponentFamily | ComponentHistogramFamily):
            family.write(out, labels, om=True)
        else:
            out.append(openmetrics_latest(_One(family)).decode("utf-8").removesuffix(EOF))
    out.append(EOF)
    return "".join(out).encode("utf-8")
