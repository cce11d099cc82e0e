"""The lane-latency chart of the health page, laid out here and drawn as inline SVG.

Server-side SVG needs no script library and nothing from the network (the console must work
on an isolated checkpoint LAN), and the page's Content-Security-Policy stays strict: the
template uses SVG presentation attributes and classes from console.css, never inline styles.
Each truck is one dot (loop trigger -> barrier-open coil), coloured by lane, with the lane's
p95 as a dashed line and the project's p95 target as a grey one. Dots above the visible range
(a stuck camera can take seconds) sit on the top edge as hollow markers and are counted, so
one outlier does not flatten every other dot against the axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from edge.metrics import LATENCY_TARGET_P95_SECONDS, GateMetrics, LaneLatency, percentile

WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 74, 16, 14, 36
#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000")


@dataclass(frozen=True)
class Dot:
    """One truck on the chart."""

    x: float
    y: float
    clipped: bool
    title: str


@dataclass
class LaneSeries:
    """One lane's dots, colour, and figures for the legend and table."""

    lane: str
    color: str
    stats: LaneLatency
    dots: list[Dot] = field(default_factory=list)
    p95_y: float | None = None

    @property
    def labels(self) -> dict[str, str]:
        """p50, p95 and max as the table prints them."""
        return {"p50": duration_label(self.stats.p50_seconds),
                "p95": duration_label(self.stats.p95_seconds),
                "max": duration_label(self.stats.max_seconds)}


@dataclass
class Tick:
    """An axis tick: its position and label."""

    at: float
    label: str


@dataclass
class LatencyChart:
    """Everything the template needs to draw the chart; ``empty`` when nothing was measured."""

    width: int
    height: int
    plot: tuple[float, float, float, float]  # left, top, right, bottom
    series: list[LaneSeries]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    target_y: float | None
    target_ms: int
    clipped: int
    points: int
    empty: bool
    standalone: bool = False  # the console's own GateMetrics: no daemon measures anything


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n at or above ``value``."""
    exp = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exp
        if candidate >= value - 1e-12:
            return float(candidate)
    return float(10 ** (exp + 1))  # pragma: no cover - the loop always returns


def duration_label(seconds: float | None) -> str:
    """``153 ms`` below a second, ``4.80 s`` above: what an officer reads at a glance."""
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.0f} ms" if seconds < 0.9995 else f"{seconds:.2f} s"


def build_chart(metrics: GateMetrics, lanes: list[str] | None = None, *,
                standalone: bool = False) -> LatencyChart:
    """Lay out the recent latencies of every lane (configured lanes first, in config order).

    ``standalone``: the console runs without the daemon, so an empty chart says why.
    """
    stats = {s.lane: s for s in metrics.latency_summary()}
    order = [lane for lane in (lanes or []) if lane in stats]
    order += [lane for lane in stats if lane not in order]
    points = metrics.recent_latencies()
    left, top, right, bottom = LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM
    chart = LatencyChart(WIDTH, HEIGHT, (left, top, right, bottom), [], [], [], None,
                         round(LATENCY_TARGET_P95_SECONDS * 1000), 0, len(points), not points,
                         standalone)
    colors = {lane: PALETTE[i % len(PALETTE)] for i, lane in enumerate(order)}
    chart.series = [LaneSeries(lane, colors[lane], stats[lane]) for lane in order]
    if not points:
        return chart
    values = sorted(s for _, _, s in points)
    # Show the bulk (to the 98th percentile) and the target; rarer outliers are clipped.
    y_max = nice_ceiling(max(LATENCY_TARGET_P95_SECONDS * 1.25, percentile(values, 98) * 1.15))
    t0, t1 = points[0][0], points[-1][0]
    if t1 - t0 < timedelta(seconds=60):
        t0, t1 = t1 - timedelta(seconds=60), t1
    pad = (t1 - t0) * 0.02  # keep the first and last dots off the axes
    t0, t1 = t0 - pad, t1 + pad
    span = (t1 - t0).total_seconds()

    def x_of(at: datetime) -> float:
        return left + (right - left) * (at - t0).total_seconds() / span

    def y_of(seconds: float) -> float:
        return bottom - (bottom - top) * min(seconds, y_max) / y_max

    by_lane = {s.lane: s for s in chart.series}
    for at, lane, seconds in points:
        clipped = seconds > y_max
        chart.clipped += clipped
        by_lane[lane].dots.append(Dot(round(x_of(at), 1), round(y_of(seconds), 1), clipped,
                                      f"{lane} {at:%H:%M:%S} UTC: {duration_label(seconds)}"))
    for series in chart.series:
        if series.stats.p95_seconds is not None:
            series.p95_y = round(y_of(series.stats.p95_seconds), 1)
    chart.target_y = round(y_of(LATENCY_TARGET_P95_SECONDS), 1)  # y_max is always above it
    step = y_max / 5
    chart.y_ticks = [Tick(round(y_of(i * step), 1), duration_label(i * step)) for i in range(6)]
    chart.x_ticks = _time_ticks(t0, t1, x_of)
    return chart


def _time_ticks(t0: datetime, t1: datetime, x_of: Callable[[datetime], float]) -> list[Tick]:
    """Round UTC times (every 1, 2, 5, 10, 15, 30 min or hours) that fit 4-7 labels."""
    span = (t1 - t0).total_seconds()
    for minutes in (1, 2, 5, 10, 15, 30, 60, 120, 240, 480, 1440):
        if span / (minutes * 60) <= 6:
            break
    step = timedelta(minutes=minutes)
    epoch = datetime(2000, 1, 1, tzinfo=t0.tzinfo)
    first = epoch + step * math.ceil((t0 - epoch) / step)
    fmt = "%H:%M" if minutes < 1440 else "%m-%d"
    ticks = []
    at = first
    while at <= t1:
        ticks.append(Tick(round(x_of(at), 1), at.strftime(fmt)))
        at += step
    return ticks


def latency_json(metrics: GateMetrics, lanes: list[str] | None = None) -> dict[str, Any]:
    """The chart's figures for ``GET /api/v1/health`` (``latency`` field)."""
    stats = {s.lane: s for s in metrics.latency_summary()}
    order = [lane for lane in (lanes or []) if lane in stats]
    order += [lane for lane in stats if lane not in order]

    def num(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    def lane_json(s: LaneLatency) -> dict[str, Any]:
        return {"lane": s.lane, "count": s.count, "p50_seconds": num(s.p50_seconds),
                "p95_seconds": num(s.p95_seconds), "max_seconds": num(s.max_seconds),
                "last_at": s.last_at.isoformat() if s.last_at else None,
                "recent": [[at.isoformat(), round(sec, 4)]
                           for at, _, sec in metrics.recent_latencies(s.lane)]}

    return {"what": "loop trigger to barrier-open coil, seconds, the most recent trucks per lane",
            "target_p95_seconds": LATENCY_TARGET_P95_SECONDS,
            "lanes": [lane_json(stats[lane]) for lane in order]}
