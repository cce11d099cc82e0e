"""Camera sources: plug-ins selected by the config's ``type``, all decoded through OpenCV.

`Capture.frames()` is what a camera worker iterates: it caps the frame rate (boosted while the
lane's entry loop is occupied), reconnects with exponential back-off when a stream drops, and
logs a failing camera once at WARNING and then at DEBUG until it recovers, so a dead camera
cannot flood the log (the pattern Home Assistant uses for failing devices).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.config.cameras import (
    CameraConfig,
    DeviceCameraConfig,
    ImageFolderCameraConfig,
    MjpegCameraConfig,
    RtspCameraConfig,
    VideoFileCameraConfig,
)

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source cannot be opened or has ended for good."""


class FrameSource(Protocol):
    """One kind of camera: open it, read frames (None when a frame is lost), close it."""

    def open(self) -> None:
        """Connect; raises SourceError when the camera cannot be reached."""

    def read(self) -> np.ndarray | None:
        """Next frame (BGR) or None when the stream hiccupped; raises SourceError at the end."""

    def close(self) -> None:
        """Release the device or connection."""


class OpenCvSource:
    """Streams, files and devices through `cv2.VideoCapture` (FFmpeg or V4L2 underneath).

    A live source (stream or device) is read by a thread of its own that keeps only the newest
    frame: a reader slower than the camera (a busy CPU) then analyses *current* frames and skips
    the rest. Read sequentially instead, the socket buffers fill with seconds of old video, and
    a plate or container of the truck that has already left is read while the next one stands
    at the barrier (seen in the scenario lab under load: container reads 13 s stale attached to
    the following truck). Files are read in order, every frame, as before.
    """

    def __init__(self, target: str | int, *, finite: bool = False, loop: bool = False,
                 size: tuple[int | None, int | None] = (None, None),
                 frame_timeout: float = 2.0) -> None:
        self.target = target
        self.finite = finite
        self.loop = loop
        self.size = size
        self.frame_timeout = frame_timeout
        self._cap: cv2.VideoCapture | None = None
        self._grabber: _LatestFrame | None = None

    def open(self) -> None:
        """Open the capture; FFmpeg timeouts keep a dead stream from blocking forever."""
        self.close()
        cap = cv2.VideoCapture(self.target, cv2.CAP_ANY)
        if self.size[0]:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        if self.size[1]:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.target!r}")
        self._cap = cap
        if not self.finite:
            self._grabber = _LatestFrame(cap, str(self.target))

    def read(self) -> np.ndarray | None:
        """Grab and decode one frame (live sources: the newest one not returned yet)."""
        if self._cap is None:
            raise SourceError("source is not open")
        if self._grabber is not None:
            frame, lost = self._grabber.next(self.frame_timeout)
            if lost:
                raise SourceError(f"stream {self.target!r} lost")
            return frame
        ok, frame = self._cap.read()
        if ok and frame is not None and frame.size:
            return frame
        if self.finite:
            if self.loop:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                return None
            raise SourceError(f"end of {self.target!r}")
        raise SourceError(f"stream {self.target!r} lost")

    def close(self) -> None:
        """Release the capture (a live source's grabber thread releases it when it stops)."""
        grabber, self._grabber = self._grabber, None
        cap, self._cap = self._cap, None
        if grabber is not None:
            grabber.stop()
        elif cap is not None:
            cap.release()


class _LatestFrame:
    """A thread that reads a live capture as fast as it delivers and keeps the newest frame.

    The thread owns the capture: it alone calls ``read`` and ``release`` on it, so a capture is
    never released while a read is in progress in another thread.
    """

    def __init__(self, cap: cv2.VideoCapture, name: str) -> None:
        self._cap = cap
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"grab {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ok, frame = self._cap.read()
                with self._cond:
                    if ok and frame is not None and frame.size:
                        self._frame = frame
                    else:
                        self._lost = True
                    self._cond.notify_all()
                if not ok:
                    return
        finally:
            self._cap.release()

    def next(self, timeout: float) -> tuple[np.ndarray | None, bool]:
        """(newest unseen frame or None after ``timeout``, whether the stream is lost)."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._lost, timeout)
            frame, self._frame = self._frame, None
            return frame, self._lost and frame is None

    def stop(self) -> None:
        """Ask the thread to end; it releases the capture after its current read returns."""
        self._stop.set()
        self._thread.join(timeout=2.0)


class ImageFolderSource:
    """Still images from a folder in name order; corrupt files are skipped with a warning."""

    def __init__(self, folder: str, pattern: str = "*.jpg", watch: bool = False) -> None:
        self.folder = Path(folder)
        self.pattern = pattern
        self.watch = watch
        self._seen: set[str] = set()

    def open(self) -> None:
        """Check the folder exists."""
        if not self.folder.is_dir():
            raise SourceError(f"image folder {self.folder} does not exist")

    def read(self) -> np.ndarray | None:
        """Next unseen image; None while waiting for new files in watch mode."""
        for path in sorted(self.folder.glob(self.pattern)):
            if path.name in self._seen:
                continue
            self._seen.add(path.name)
            frame = cv2.imread(str(path))
            if frame is None or frame.size == 0:
                log.warning("camera image %s is corrupt or not an image; skipped", path)
                continue
            return frame
        if self.watch:
            return None
        raise SourceError(f"no more images in {self.folder}")

    def close(self) -> None:
        """Nothing to release."""


def make_source(cfg: CameraConfig) -> FrameSource:
    """The source plug-in for a camera config."""
    if isinstance(cfg, MjpegCameraConfig):
        return OpenCvSource(cfg.url)
    if isinstance(cfg, RtspCameraConfig):
        transport = "tcp" if cfg.tcp else "udp"
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS",
                              f"rtsp_transport;{transport}|stimeout;5000000")
        return OpenCvSource(cfg.url)
    if isinstance(cfg, VideoFileCameraConfig):
        return OpenCvSource(cfg.path, finite=True, loop=cfg.loop)
    if isinstance(cfg, ImageFolderCameraConfig):
        return ImageFolderSource(cfg.path, cfg.pattern, cfg.watch)
    if isinstance(cfg, DeviceCameraConfig):
        return OpenCvSource(cfg.device, size=(cfg.width, cfg.height))
    raise TypeError(f"no source plug-in for {type(cfg).__name__}")


@dataclass
class CaptureStats:
    """Counters a health page and /metrics can show."""

    frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    last_error: str | None = None


class Capture:
    """Frame pacing, occupancy boost and reconnect with back-off around one source."""

    def __init__(self, cfg: CameraConfig, source: FrameSource | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.source = source or make_source(cfg)
        self.occupied = threading.Event()
        self.stats = CaptureStats()
        self._clock = clock
        self._failing = False

    def _fail(self, error: str) -> None:
        self.stats.last_error = error
        level = logging.DEBUG if self._failing else logging.WARNING
        log.log(level, "camera %s: %s; reconnecting", self.cfg.name, error,
                extra={"device": self.cfg.name})
        self._failing = True

    def _recovered(self) -> None:
        if self._failing:
            log.warning("camera %s: recovered", self.cfg.name, extra={"device": self.cfg.name})
        self._failing = False
        self.stats.last_error = None

    def frames(self, stop: threading.Event) -> Iterator[tuple[float, np.ndarray]]:
        """Yield (monotonic time, frame) until `stop` is set or a finite source ends."""
        backoff = self.cfg.reconnect_min
        opened = False
        next_due = 0.0
        while not stop.is_set():
            if not opened:
                try:
                    self.source.open()
                    opened = True
                except SourceError as exc:
                    self._fail(str(exc))
                    stop.wait(backoff)
                    backoff = min(backoff * 2, self.cfg.reconnect_max)
                    self.stats.reconnects += 1
                    continue
            try:
                frame = self.source.read()
            except SourceError as exc:
                if not isinstance(self.source, OpenCvSource) or self.source.finite:
                    log.info("camera %s: %s", self.cfg.name, exc)
                    break
                self._fail(str(exc))
                self.source.close()
                opened = False
                stop.wait(backoff)
                backoff = min(backoff * 2, self.cfg.reconnect_max)
                self.stats.reconnects += 1
                continue
            if frame is None:
                self.stats.dropped += 1
                stop.wait(0.05)
                continue
            backoff = self.cfg.reconnect_min
            self._recovered()
            now = self._clock()
            if now < next_due:
                self.stats.dropped += 1  # decoded to keep the stream live, not analysed
                continue
            fps = self.cfg.max_fps if self.occupied.is_set() else self.cfg.idle_fps
            next_due = now + 1.0 / fps
            self.stats.frames += 1
            yield now, frame
        self.source.close()
