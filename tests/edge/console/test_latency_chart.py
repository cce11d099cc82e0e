"""Layout of the health page's latency chart: scales, ticks, clipping, order of lanes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge.console.latency_chart import build_chart, duration_label, latency_json, nice_ceiling
from edge.metrics import GateMetrics

T0 = datetime(2026, 11, 23, 7, 58, 20, tzinfo=UTC)


def testnice_ceiling() -> None:
    assert [nice_ceiling(v) for v in (0.3, 0.375, 0.41, 0.9, 1.0, 1.2, 2.6, 4.99)] == \
        [pytest.approx(x) for x in (0.5, 0.5, 0.5, 1.0, 1.0, 2.0, 5.0, 5.0)]


def test_duration_label() -> None:
    assert duration_label(0.1534) == "153 ms"
    assert duration_label(0.9994) == "999 ms"
    assert duration_label(0.9996) == "1.00 s"
    assert duration_label(4.8) == "4.80 s"
    assert duration_label(None) == "—"


def test_empty_chart_keeps_the_configured_lanes() -> None:
    chart = build_chart(GateMetrics("HN01", ["in-1", "in-2"], process_metrics=False),
                        ["in-1", "in-2"])
    assert chart.empty and chart.points == 0
    assert [s.lane for s in chart.series] == ["in-1", "in-2"]
    assert all(s.stats.count == 0 and not s.dots for s in chart.series)


def test_layout_scales_ticks_and_clipping() -> None:
    m = GateMetrics("HN01", ["out-1", "in-1"], process_metrics=False)
    for i in range(100):  # 50 minutes, one truck every 30 s, 150..249 ms
        m.observe_lane_latency("in-1", 0.15 + i / 1000, at=T0 + timedelta(seconds=30 * i))
    m.observe_lane_latency("in-1", 4.9, at=T0 + timedelta(minutes=20))  # a stuck camera
    m.observe_lane_latency("extra", 0.2, at=T0 + timedelta(minutes=5))  # a lane not in config
    chart = build_chart(m, ["out-1", "in-1"])
    left, top, right, bottom = chart.plot
    assert [s.lane for s in chart.series] == ["out-1", "in-1", "extra"]  # config order first
    assert len({s.color for s in chart.series}) == 3
    in1 = chart.series[1]
    assert len(in1.dots) == 101 and chart.points == 102
    # the visible range covers the bulk and the 300 ms target, not the 4.9 s outlier
    assert chart.y_ticks[-1].label == "500 ms" and chart.y_ticks[0].label == "0 ms"
    assert chart.clipped == 1
    slow = [d for d in in1.dots if d.clipped]
    assert len(slow) == 1 and slow[0].y == top and "4.90 s" in slow[0].title
    # dots fall inside the plot, earlier trucks to the left, slower ones higher up
    assert all(left < d.x < right and top <= d.y <= bottom for d in in1.dots)
    fast, later = in1.dots[0], in1.dots[50]
    assert fast.x < later.x and fast.y > later.y
    assert chart.target_y is not None and bottom > chart.target_y > top
    assert in1.p95_y is not None and in1.p95_y > chart.target_y  # p95 ≈ 245 ms, below target
    # time ticks on round UTC minutes, left to right, inside the plot
    labels = [t.label for t in chart.x_ticks]
    assert labels == ["08:00", "08:10", "08:20", "08:30", "08:40"]
    xs = [t.at for t in chart.x_ticks]
    assert xs == sorted(xs) and left < xs[0] and xs[-1] < right


def test_a_single_truck_gets_a_minute_wide_axis() -> None:
    m = GateMetrics("HN01", ["in-1"], process_metrics=False)
    m.observe_lane_latency("in-1", 0.2, at=T0)
    chart = build_chart(m, ["in-1"])
    dot = chart.series[0].dots[0]
    assert chart.plot[2] - 20 < dot.x <= chart.plot[2]  # newest at the right edge
    assert chart.x_ticks  # at least one labelled minute


def test_latency_json_rounds_and_orders() -> None:
    m = GateMetrics("HN01", ["in-2", "in-1"], process_metrics=False)
    m.observe_lane_latency("in-1", 0.123456, at=T0)
    doc = latency_json(m, ["in-2", "in-1"])
    assert [row["lane"] for row in doc["lanes"]] == ["in-2", "in-1"]
    row = doc["lanes"][1]
    assert row["p50_seconds"] == 0.1235 and row["recent"] == [[T0.isoformat(), 0.1235]]
    assert doc["lanes"][0]["count"] == 0 and doc["lanes"][0]["last_at"] is None
