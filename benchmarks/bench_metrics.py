"""Cost of GateMetrics calls on the daemon's hot paths, and of one scrape and one health page.

The daemon calls ``observe_lane_latency``/``observe_decision``/``count_read`` from its event
loop for every truck and every read, so they must stay in the microseconds; a scrape every 15 s
and the health page's chart must stay in milliseconds with 4 busy lanes (full ring buffers,
every reason code seen, devices reported). Times are per call, median of 5 rounds.

Ends with one JSON line (targets: hot-path call ≤ 20 µs, scrape ≤ 50 ms, chart ≤ 50 ms).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.console.latency_chart import build_chart, latency_json  # noqa: E402
from edge.domain.model import ReasonCode  # noqa: E402
from edge.metrics import RECENT_PER_LANE, GateMetrics  # noqa: E402

LANES = ["in-1", "in-2", "out-1", "out-2"]


def per_call(fn: Callable[[int], None], n: int, rounds: int = 5) -> float:
    """Median seconds per call over ``rounds`` rounds of ``n`` calls."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for i in range(n):
            fn(i)
        times.append((time.perf_counter() - t) / n)
    return statistics.median(times)


def main() -> None:
    m = GateMetrics("HUUNGHI", LANES)
    reasons = [r.value for r in ReasonCode]
    start = datetime.now(UTC) - timedelta(hours=2)
    for lane in LANES:  # a busy morning: full ring buffers, every series present
        for i in range(RECENT_PER_LANE):
            m.observe_lane_latency(lane, 0.12 + (i % 37) / 200, at=start + timedelta(seconds=14 * i))
        for reason in reasons:
            m.observe_decision(lane, "refer", [reason], seconds=0.1)
        for kind, device in (("plate", f"cam-{lane}-front"), ("trailer_plate", f"cam-{lane}-rear"),
                             ("container", f"cam-{lane}-side"), ("seal", f"seal-{lane}")):
            m.count_read(lane, kind, device)
            m.set_device_up(device, kind, True)
    lat = per_call(lambda i: m.observe_lane_latency(LANES[i % 4], 0.2), 20000)
    dec = per_call(lambda i: m.observe_decision(LANES[i % 4], "refer",
                                                ("PLATE_MISMATCH", "SEAL_MISSING"), 0.1), 20000)
    read = per_call(lambda i: m.count_read(LANES[i % 4], "plate", f"cam-{LANES[i % 4]}-front"),
                    20000)
    gauge = per_call(lambda i: m.set_outbox_depth(i), 20000)
    body, _ = m.render()
    lines = body.count(b"\n")
    scrape = per_call(lambda i: m.render(), 50)
    scrape_om = per_call(lambda i: m.render("application/openmetrics-text; version=1.0.0"), 50)
    chart = per_call(lambda i: build_chart(m, LANES), 50)
    health = per_call(lambda i: latency_json(m, LANES), 50)
    print(f"observe_lane_latency   {lat * 1e6:8.2f} µs/call")
    print(f"observe_decision (2 r.) {dec * 1e6:7.2f} µs/call")
    print(f"count_read             {read * 1e6:8.2f} µs/call")
    print(f"set_outbox_depth       {gauge * 1e6:8.2f} µs/call")
    print(f"scrape (text)          {scrape * 1e3:8.2f} ms  ({len(body) / 1024:.0f} KiB, "
          f"{lines} lines)")
    print(f"scrape (OpenMetrics)   {scrape_om * 1e3:8.2f} ms")
    print(f"health chart layout    {chart * 1e3:8.2f} ms  ({len(LANES) * RECENT_PER_LANE} dots)")
    print(f"health JSON latency    {health * 1e3:8.2f} ms")
    hot = max(lat, dec, read, gauge)
    print(json.dumps({"bench": "metrics", "hot_path_us": round(hot * 1e6, 2), "target_hot_path_us": 20,
                      "scrape_ms": round(scrape * 1e3, 2), "target_scrape_ms": 50,
                      "chart_ms": round(chart * 1e3, 2), "target_chart_ms": 50,
                      "scrape_bytes": len(body)}))


if __name__ == "__main__":
    main()
