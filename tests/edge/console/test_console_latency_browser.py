"""The lane-latency chart in a real browser (Debian's chromium through Playwright).

It must render from the console alone (no script library, nothing fetched), pass the page's
Content-Security-Policy, fit a tablet and a laptop screen, and show each lane's p50/p95.
The screenshot goes to the test's output directory (and to $GATE_EDGE_SCREENSHOTS when set).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, expect

from edge.metrics import GateMetrics
from tests.edge.console.console_site import PASSWORDS, Site
from tests.edge.console.test_console_metrics import daemon_app, running

pytestmark = pytest.mark.browser


def _shot(page: Page, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / f"console-{name}.png"), full_page=True)
    extra = os.environ.get("GATE_EDGE_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(extra) / f"console-{name}.png"), full_page=True)


def _a_morning(metrics: GateMetrics) -> int:
    """Two lanes over 40 minutes: in-1 healthy with one stuck-camera truck, in-2 slower."""
    start = datetime.now(UTC) - timedelta(minutes=40)
    n = 0
    for i in range(60):
        jitter = ((i * 37) % 23) / 1000
        metrics.observe_lane_latency("in-1", 0.14 + jitter + (0.05 if i % 9 == 0 else 0),
                                     at=start + timedelta(seconds=40 * i))
        n += 1
    metrics.observe_lane_latency("in-1", 4.8, at=start + timedelta(minutes=25))
    for i in range(30):
        metrics.observe_lane_latency("in-2", 0.22 + ((i * 53) % 31) / 300,
                                     at=start + timedelta(seconds=75 * i + 10))
        n += 1
    return n + 1


def test_health_page_draws_the_lane_latency_chart(site: Site, page: Page,
                                                  output_path: str) -> None:
    metrics = GateMetrics(site.cfg.site.code, [lane.id for lane in site.cfg.lanes])
    trucks = _a_morning(metrics)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    outside: list[str] = []

    def note(request: Request) -> None:
        if not request.url.startswith(("http://127.0.0.1", "data:")):
            outside.append(request.url)

    page.on("request", note)
    with running(daemon_app(site, metrics)) as url:
        page.goto(f"{url}/health")
        page.fill("#username", "olga")
        page.fill("#password", PASSWORDS["olga"])
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/health$"))
        chart = page.locator("svg.latency-chart")
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box and box["width"] > 600 and 180 < box["height"] <= 340
        assert page.locator("svg.latency-chart circle").count() == trucks
        expect(page.locator("svg.latency-chart circle.clipped")).to_have_count(1)
        expect(page.locator("svg.latency-chart .target-label")).to_have_text("target p95 300 ms")
        # the dots really are drawn in the lane colours (no CSP-blocked styling)
        fill = page.locator("g.lane-series[data-lane=in-1] circle.dot").first.evaluate(
            "c => getComputedStyle(c).fill")
        assert fill == "rgb(0, 114, 178)"
        table = page.locator("table.latency-table")
        expect(table).to_contain_text("in-1")
        expect(table.locator("tbody tr").nth(1)).to_contain_text("30")
        rows = table.locator("tbody tr")
        assert re.search(r"\d+ ms\s*\d+ ms", rows.nth(0).inner_text())
        _shot(page, Path(output_path), "health-latency")
        page.set_viewport_size({"width": 768, "height": 1024})  # tablet portrait
        page.reload()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        box = chart.bounding_box()
        assert box and box["width"] > 600
        _shot(page, Path(output_path), "health-latency-tablet")
    assert not outside, f"the page fetched from elsewhere: {outside}"
    assert not [p for p in problems if "Content Security Policy" in p], problems

