"""A live stream read slower than the camera sends must give current frames, not a backlog.

Real MJPEG stream from the camera simulator; the consumer pauses as a busy reader would, then
the picture changes: the next frame read must already show the change.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from edge.plates.sources import OpenCvSource, SourceError
from simulators.camera.server import CameraServer, truck_from_json

RED_TRUCK = {"tractor_plate": "51C12345", "duration_s": 30, "body_colour": [0, 0, 255]}


@pytest.fixture
def camera() -> Iterator[CameraServer]:
    server = CameraServer("127.0.0.1", 0, size=(640, 360), fps=10.0).start()
    yield server
    server.stop()


def _red(frame: np.ndarray) -> float:
    return float(((frame[:, :, 2] > 200) & (frame[:, :, 0] < 60) & (frame[:, :, 1] < 60)).mean())


def test_a_slow_reader_gets_the_newest_frame(camera: CameraServer) -> None:
    source = OpenCvSource(camera.url + "/front.mjpg")
    source.open()
    try:
        first = source.read()
        assert first is not None and _red(first) < 0.01       # empty lane
        time.sleep(4.0)             # a busy reader: 40 frames arrive meanwhile
        camera.sim.add(truck_from_json(RED_TRUCK))
        time.sleep(1.0)
        frame = source.read()
        assert frame is not None
        # Read in order, this would be a frame from 4 s ago (empty lane); it must be current.
        assert _red(frame) > 0.02
    finally:
        source.close()


def test_a_dead_stream_is_reported_lost(camera: CameraServer) -> None:
    source = OpenCvSource(camera.url + "/front.mjpg", frame_timeout=1.0)
    source.open()
    try:
        assert source.read() is not None
        camera.stop()
        with pytest.raises(SourceError, match="lost"):
            for _ in range(30):
                source.read()
    finally:
        source.close()
