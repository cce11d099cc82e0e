"""A running camera simulator on a free loopback port, stopped after the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulators.camera.server import CameraServer


@pytest.fixture
def camera_server() -> Iterator[CameraServer]:
    server = CameraServer("127.0.0.1", 0, size=(1280, 720), fps=8.0).start()
    yield server
    server.stop()
