"""Camera sources: frame pacing with the occupancy boost, bad files, reconnect after loss."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import TypeAdapter

from edge.config.cameras import CameraConfig
from edge.plates.sources import Capture, ImageFolderSource, OpenCvSource, make_source
from simulators.camera.server import CameraServer

cameras: TypeAdapter = TypeAdapter(CameraConfig)


class StepClock:
    """A clock that advances a fixed step per call: pacing is tested without sleeping."""

    def __init__(self, step: float) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "lane.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(20):
        out.write(np.full((120, 160, 3), i * 10, np.uint8))
    out.release()
    return path


def run_capture(cap: Capture) -> list[np.ndarray]:
    return [f for _, f in cap.frames(threading.Event())]


def test_video_file_paced_at_idle_rate_and_boosted_when_occupied(video: Path) -> None:
    cfg = cameras.validate_python({"name": "replay", "type": "video-file", "path": str(video),
                                   "max_fps": 10, "idle_fps": 2})
    assert isinstance(make_source(cfg), OpenCvSource)
    idle = Capture(cfg, clock=StepClock(0.1))
    assert len(run_capture(idle)) == 4  # one frame in five at 2 fps when frames come at 10 fps
    assert idle.stats.dropped == 16
    busy = Capture(cfg, clock=StepClock(0.1))
    busy.occupied.set()  # entry loop occupied: every frame at 10 fps
    assert len(run_capture(busy)) == 20


def test_image_folder_skips_corrupt_files_with_a_warning(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((50, 60, 3), np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(tmp_path / "c.jpg"), np.full((50, 60, 3), 255, np.uint8))
    cfg = cameras.validate_python({"name": "ftp", "type": "image-folder", "path": str(tmp_path),
                                   "idle_fps": 60, "max_fps": 60})
    assert isinstance(make_source(cfg), ImageFolderSource)
    with caplog.at_level(logging.WARNING):
        frames = run_capture(Capture(cfg, clock=StepClock(1.0)))
    assert [int(f.mean()) for f in frames] == [0, 255]
    assert "b.jpg is corrupt" in caplog.text


def test_missing_folder_is_retried_then_found(tmp_path: Path) -> None:
    folder = tmp_path / "later"
    cfg = cameras.validate_python({"name": "ftp", "type": "image-folder", "path": str(folder),
                                   "reconnect_min": 0.05, "reconnect_max": 0.1})
    cap = Capture(cfg, clock=StepClock(1.0))
    stop = threading.Event()
    got: list[np.ndarray] = []

    def consume() -> None:
        got.extend(f for _, f in cap.frames(stop))

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.4)
    folder.mkdir()
    cv2.imwrite(str(folder / "x.jpg"), np.zeros((20, 20, 3), np.uint8))
    t.join(timeout=5)
    stop.set()
    assert len(got) == 1
    assert cap.stats.reconnects >= 2


def test_mjpeg_stream_reconnects_after_the_camera_restarts(
        caplog: pytest.LogCaptureFixture) -> None:
    server = CameraServer("127.0.0.1", 0, size=(320, 180), fps=10).start()
    port = server.httpd.server_address[1]
    cfg = cameras.validate_python({"name": "sim", "type": "http-mjpeg",
                                   "url": f"http://127.0.0.1:{port}/front.mjpg",
                                   "max_fps": 30, "idle_fps": 30,
                                   "reconnect_min": 0.1, "reconnect_max": 0.4})
    cap = Capture(cfg)
    stop = threading.Event()
    times: list[float] = []

    def consume() -> None:
        for _, frame in cap.frames(stop):
            assert frame.shape == (180, 320, 3)
            times.append(time.monotonic())

    t = threading.Thread(target=consume)
    replacement: CameraServer | None = None
    try:
        with caplog.at_level(logging.WARNING):
            t.start()
            deadline = time.monotonic() + 10
            while len(times) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(times) >= 3
            server.stop()  # the camera goes away
            time.sleep(1.5)
            before = len(times)
            replacement = CameraServer("127.0.0.1", port, size=(320, 180), fps=10).start()
            deadline = time.monotonic() + 15
            while len(times) < before + 3 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        stop.set()
        t.join(timeout=10)
        if replacement is not None:
            replacement.stop()
    assert len(times) >= before + 3, "no frames after the camera came back"
    assert cap.stats.reconnects >= 1
    assert "reconnecting" in caplog.text and "recovered" in caplog.text
    # rate-limited: one WARNING for the outage, however many attempts failed
    assert caplog.text.count("reconnecting") == 1
