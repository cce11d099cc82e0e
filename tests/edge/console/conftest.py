"""Fixtures for the officer console tests (helpers in console_site.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edge.console import LaneFeed, create_app
from tests.edge.console.console_site import SECRET, RecordingGateController, Site, make_site


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path, {"login_attempts_per_minute": 100})


@pytest.fixture
def gate() -> RecordingGateController:
    return RecordingGateController()


@pytest.fixture
def app(site: Site, gate: RecordingGateController) -> Iterator[FastAPI]:
    feed = LaneFeed((lane.id, lane.name) for lane in site.cfg.lanes)
    application = create_app(site.cfg, feed=feed, commands=gate, session_secret=SECRET)
    yield application
    application.state.service.close()  # TestClient contexts close it too; this covers the rest


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://testserver") as c:
        yield c


# -- Playwright with Debian's chromium (DESIGN-NOTES §12: never `playwright install`) -------------
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.fail("browser tests need Debian's chromium: apt-get install -y chromium "
                    "(or deselect them with -m 'not browser')")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM),
            "args": ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update",
                     "--no-first-run", "--disable-features=Translate,MediaRouter"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1366, "height": 768},
            "timezone_id": "Asia/Ho_Chi_Minh", "locale": "vi-VN"}
