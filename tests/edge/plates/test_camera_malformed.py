"""Camera streams that lie: corrupt JPEG parts inside an MJPEG stream, a web page instead of a
stream, an endless part that never ends a frame. Capture keeps going, reconnects and recovers
(docs/robustness.md). A real HTTP server on loopback; OpenCV/FFmpeg reads it as it would a
camera."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest
from pydantic import TypeAdapter

from edge.config.cameras import CameraConfig
from edge.plates.sources import Capture

cameras: TypeAdapter = TypeAdapter(CameraConfig)
BOUNDARY = b"frame"


def _jpeg(value: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((120, 160, 3), value, np.uint8))
    assert ok
    return bytes(buf)


GOOD = _jpeg(128)


class LyingCamera(BaseHTTPRequestHandler):
    """Serves /stream according to the server's current ``mode``."""

    server: CameraHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        """One stream per connection, in the mode set when it starts."""
        mode = self.server.mode
        if mode == "html":
            body = b"<html><body>Please log in to the camera</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
        self.end_headers()
        try:
            for i in range(400):
                if self.server.stopping.is_set() or self.server.mode != mode:
                    return
                part = GOOD
                if mode == "corrupt" and i % 2:
                    part = GOOD[:200] + bytes(range(256)) * 4     # header ok, body garbage
                if mode == "corrupt" and i % 5 == 1:
                    part = b"this is not a jpeg at all"
                self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n"
                                 + f"Content-Length: {len(part)}\r\n\r\n".encode() + part
                                 + b"\r\n")
                self.wfile.flush()
                time.sleep(0.03)
        except (BrokenPipeError, ConnectionResetError):
            return


class CameraHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), LyingCamera)
        self.mode = "good"
        self.stopping = threading.Event()


@pytest.fixture
def camera() -> Iterator[CameraHTTPServer]:
    server = CameraHTTPServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def _capture(camera: CameraHTTPServer) -> Capture:
    port = camera.server_address[1]
    return Capture(cameras.validate_python({
        "name": "lying", "type": "http-mjpeg", "url": f"http://127.0.0.1:{port}/stream",
        "max_fps": 30, "idle_fps": 30, "reconnect_min": 0.1, "reconnect_max": 0.4}))


def _run(cap: Capture, seconds: float, until: int = 10**9) -> list[np.ndarray]:
    stop = threading.Event()
    frames: list[np.ndarray] = []

    def consume() -> None:
        for _, frame in cap.frames(stop):
            frames.append(frame)
            if len(frames) >= until:
                stop.set()

    thread = threading.Thread(target=consume)
    thread.start()
    thread.join(seconds)
    stop.set()
    thread.join(15)
    assert not thread.is_alive(), "capture did not stop"
    return frames


def test_corrupt_jpeg_parts_in_the_stream_do_not_stop_capture(camera: CameraHTTPServer) -> None:
    camera.mode = "corrupt"
    frames = _run(_capture(camera), 20, until=8)
    assert len(frames) >= 8
    assert all(f.shape == (120, 160, 3) for f in frames)


def test_a_web_page_instead_of_a_stream_is_retried_then_recovers(
        camera: CameraHTTPServer, caplog: pytest.LogCaptureFixture) -> None:
    camera.mode = "html"
    cap = _capture(camera)
    stop = threading.Event()
    frames: list[np.ndarray] = []

    def consume() -> None:
        for _, frame in cap.frames(stop):
            frames.append(frame)

    with caplog.at_level(logging.WARNING):
        thread = threading.Thread(target=consume)
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while cap.stats.reconnects < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert cap.stats.reconnects >= 2 and frames == []
            assert cap.stats.last_error
            camera.mode = "good"          # someone fixed the camera's URL / login
            deadline = time.monotonic() + 20
            while len(frames) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(15)
    assert len(frames) >= 3 and cap.stats.last_error is None
    assert caplog.text.count("reconnecting") == 1 and "recovered" in caplog.text
