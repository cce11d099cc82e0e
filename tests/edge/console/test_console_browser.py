"""The console in a real browser: Debian's chromium driven by Playwright over a real socket.

An officer logs in, watches a lane card change when a passage lands in records.db, releases a
referral with a reason code and finds the release in the audit log. Screenshots of each main
page go to the test's output directory (and to $GATE_EDGE_SCREENSHOTS when set, which is how
docs/images/ was made).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from edge.console import LaneFeed, create_app, serve
from tests.edge.console.console_site import (
    PASSWORDS,
    SECRET,
    RecordingGateController,
    Site,
    demo_trucks,
    make_site,
    save_truck,
)

pytestmark = pytest.mark.browser


@dataclass
class Live:
    url: str
    site: Site
    gate: RecordingGateController
    feed: LaneFeed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    site = make_site(tmp_path, {"watch_interval": "0.2s", "login_attempts_per_minute": 100})
    gate = RecordingGateController()
    feed = LaneFeed((lane.id, lane.name) for lane in site.cfg.lanes)
    app = create_app(site.cfg, feed=feed, commands=gate, watch_records=True,
                     session_secret=SECRET)
    port = _free_port()
    server = serve(app, "127.0.0.1", port)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "console did not start"
        time.sleep(0.05)
    try:
        yield Live(f"http://127.0.0.1:{port}", site, gate, feed)
    finally:
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "console server did not stop"


def _shot(page: Page, out: Path, name: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / f"console-{name}.png"))
    extra = os.environ.get("GATE_EDGE_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(extra) / f"console-{name}.png"))


def _login(page: Page, live: Live, user: str) -> None:
    page.goto(f"{live.url}/lanes")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#username", user)
    page.fill("#password", PASSWORDS[user])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/lanes$"))


def test_officer_watches_lane_releases_referral_and_finds_it_in_audit(
        live: Live, page: Page, output_path: str) -> None:
    out = Path(output_path)
    page.goto(f"{live.url}/lanes")
    page.fill("#username", "olga")
    page.fill("#password", "not-her-password")
    page.click("button[type=submit]")
    expect(page.locator("#password-error")).to_contain_text("wrong user name or password")
    _shot(page, out, "login-error")
    page.fill("#password", PASSWORDS["olga"])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/lanes$"))
    expect(page.locator("#live")).to_have_attribute("data-state", "live")

    # another process (the daemon, the demo) writes a passage: the lane card changes by itself
    unknown = next(t for t in demo_trucks() if t["name"] == "unknown truck")
    cache, records = live.site.open_cache(), live.site.open_records()
    try:
        passage = save_truck(live.site.cfg, cache, records, unknown, live.site.evidence)
    finally:
        cache.close()
        records.close()
    card = page.locator("#lane-in-1")
    expect(card.locator(".plate")).to_have_text("99C-999.99", timeout=10_000)
    expect(card.locator(".decision")).to_contain_text("REFER")
    expect(card.locator(".reasons")).to_contain_text("NO_MANIFEST")
    expect(card.locator("img")).to_have_attribute("src", re.compile(passage.id))
    # the daemon's own path: lane state pushed into the feed
    live.feed.update_lane("in-2", state="passing", barrier="up")
    expect(page.locator("#lane-in-2 .barrier")).to_have_text("barrier: up", timeout=10_000)
    live.feed.update_lane("in-2", state="fault", barrier="up", faults=("photocell blocked 90 s",))
    expect(page.locator("#lane-in-2 .faults")).to_contain_text("photocell blocked")
    _shot(page, out, "lanes")

    # the referral queue: a plate typed wrong gets a hint, then a release with a reason code
    page.click("nav >> text=Referrals")
    form = page.locator(f"#ref-{passage.id} form.action")
    form.locator("select[name=reason_code]").select_option("OCR_MISREAD")
    form.locator("input[name=plate]").fill("99C-I99.99")
    form.locator("button[value=plate]").click()
    article = page.locator(f"#ref-{passage.id}")
    expect(article.locator(".field-error")).to_contain_text("fits no known plate layout")
    article.scroll_into_view_if_needed()
    _shot(page, out, "referral-plate-hint")
    form = page.locator(f"#ref-{passage.id} form.action")
    form.locator("select[name=reason_code]").select_option("DOCUMENTS_CHECKED")
    form.locator("input[name=note]").fill("new truck, papers checked at the booth")
    form.locator("button[value=release]").click()
    expect(page.locator(".notice")).to_contain_text("OPEN")
    expect(page.locator(f"#ref-{passage.id}")).to_have_count(0)
    assert [(c.passage_id, c.action, c.reason_code) for c in live.gate.sent] == [
        (passage.id, "open", "DOCUMENTS_CHECKED")]
    _shot(page, out, "referrals")

    page.goto(f"{live.url}/passages/{passage.id}")
    expect(page.locator(".timeline")).to_contain_text("officer.release by olga [DOCUMENTS_CHECKED]")
    expect(page.locator(".timeline")).to_contain_text("barrier.open by olga")
    _shot(page, out, "passage")

    page.click("nav >> text=Audit")
    row = page.locator("tr.action-officer-release").first
    expect(row).to_contain_text("olga")
    expect(row).to_contain_text("DOCUMENTS_CHECKED")
    expect(row).to_contain_text("new truck, papers checked at the booth")
    expect(page.locator("tr.action-login-failed").first).to_contain_text("BAD_CREDENTIALS")
    _shot(page, out, "audit")


def test_supervisor_pages_and_tablet_layout(live: Live, page: Page, output_path: str) -> None:
    out = Path(output_path)
    _login(page, live, "sam")
    page.goto(f"{live.url}/audit?verify=true")
    expect(page.locator("#chain-result")).to_contain_text("Chain verified")
    held = live.site.by_outcome("hold")[0]
    page.goto(f"{live.url}/passages/{held.id}")
    expect(page.locator("h2", has_text="Manifest")).to_be_visible()
    _shot(page, out, "passage-hold")
    page.goto(f"{live.url}/hotlist")
    page.fill("#h-value", "51C-999.99")
    page.fill("#h-reason", "stolen tractor report")
    page.select_option("#h-code", "INTELLIGENCE_REPORT")
    page.click("form.form button[type=submit]")
    expect(page.locator("table.list")).to_contain_text("51C-999.99")
    _shot(page, out, "hotlist")
    # a barcode scanner types the declaration number and presses Enter: that must never release
    page.goto(f"{live.url}/referrals")
    first = page.locator("article.referral").first
    ref_id = (first.get_attribute("id") or "")[4:]
    first.locator("input[name=declaration_no]").fill("105123456780")
    first.locator("input[name=declaration_no]").press("Enter")
    expect(page.locator(f"#ref-{ref_id} .field-error")).to_contain_text("choose a reason code")
    expect(page.locator(f"#ref-{ref_id} input[name=declaration_no]")).to_have_value("105123456780")
    assert live.gate.sent == []
    page.goto(f"{live.url}/manifests?q=51C-123.45")
    expect(page.locator("table.list")).to_contain_text("105123456780")
    _shot(page, out, "manifests")
    live.feed.set_broker(True, "mqtts://broker.huunghi.local:8883")
    live.feed.set_device("cam-in-1-front", "camera", True, "25 fps")
    live.feed.set_device("seal-in-1", "e-seal reader", False, "CRC errors: 14 in 60 s")
    page.goto(f"{live.url}/health")
    expect(page.locator("body")).to_contain_text("CRC errors: 14 in 60 s")
    _shot(page, out, "health")
    for width, height in ((768, 1024), (1366, 768)):  # tablet portrait, officer's laptop
        page.set_viewport_size({"width": width, "height": height})
        for path in ("/lanes", "/referrals", "/audit", "/passages", "/manifests", "/hotlist"):
            page.goto(f"{live.url}{path}")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, (width, path, overflow)
    page.set_viewport_size({"width": 768, "height": 1024})
    page.goto(f"{live.url}/lanes")
    _shot(page, out, "lanes-tablet")
