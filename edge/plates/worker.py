"""One process per camera: capture, detect, read, vote; only final reads cross the queue.

Frames never leave the worker (DESIGN-NOTES §2: queues carry plate reads, not frames). The
daemon starts a `CameraWorker`, sets `occupied` while the lane's entry loop is occupied (the
capture rate is boosted), and awaits `next_read()` on the asyncio loop without blocking it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import queue
import time
from datetime import UTC, datetime
from typing import Any

import cv2
from pydantic import TypeAdapter

from edge.config.cameras import CameraConfig, ReaderConfig
from edge.domain.model import ContainerRead, PlateCandidate, PlateRead
from edge.parent_watch import parent_gone

log = logging.getLogger(__name__)

_cameras: TypeAdapter[Any] = TypeAdapter(CameraConfig)


def _evidence(crop: Any) -> bytes | None:
    if crop is None or getattr(crop, "size", 0) == 0:
        return None
    ok, jpg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return jpg.tobytes() if ok else None


def worker_main(camera: dict[str, Any], reader_cfg: dict[str, Any], lane: str,
                out: Any, stop: Any, occupied: Any, log_level: int = logging.INFO,
                daemon_pid: int | None = None) -> None:
    """Process entry: everything heavy (OpenCV, onnxruntime) is created here, in the child.

    `daemon_pid` is the pid of the process that started the worker, taken in that process:
    asking os.getppid() here, after seconds of model loading, gave 1 when the daemon had been
    SIGKILLed in the meantime, and the orphan then kept running for good (parent_watch.py).
    """
    from edge.logging_setup import configure_logging
    # A spawned child starts with no logging set up: without this, a camera that cannot be
    # reached would reconnect in silence. stderr goes to the same journal as the daemon's.
    configure_logging(log_level)
    import threading
    from pathlib import Path

    from edge.plates.live import LiveReader
    from edge.plates.reader import PlateReader
    from edge.plates.sources import Capture

    cam = _cameras.validate_python(camera)
    rc = ReaderConfig.model_validate(reader_cfg)
    reader = PlateReader(detector_model=Path(rc.detector_model) if rc.detector_model else None,
                         detector_confidence=rc.detector_confidence, threads=rc.threads,
                         fast_detector=rc.fast_detector, recognizer=rc.recognizer,
                         cascade_below=rc.cascade_below)
    capture = Capture(cam)
    halt = threading.Event()

    parent = daemon_pid if daemon_pid is not None else os.getppid()

    def watch() -> None:  # mirror the cross-process events into the capture thread
        while not halt.is_set():
            # A gate-edge killed with SIGKILL cannot set `stop`: a new parent pid means
            # the daemon is gone, and an orphaned worker must not keep a camera busy.
            if stop.is_set() or parent_gone(parent):
                halt.set()
            if occupied.is_set():
                capture.occupied.set()
            else:
                capture.occupied.clear()
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    live = LiveReader(reader, rc, cam.roi.box() if cam.roi else None)
    errors = 0
    for now, frame in capture.frames(halt):
        try:
            finals = live.process(frame, now)
        except ValueError as exc:  # zero-size frame, ROI outside the picture
            errors += 1
            if errors == 1 or errors % 100 == 0:
                log.warning("camera %s: frame skipped (%s), %d so far", cam.name, exc, errors)
            continue
        for kind, final in finals:
            log.debug("camera %s: %s %s final after %d frame(s), confidence %.2f", cam.name,
                      kind, final.text, final.frames, final.confidence)
            if kind == "plate":
                read = PlateRead(
                    lane=lane, camera=cam.name,
                    # A rear (container) camera sees the trailer's plate, never the tractor's.
                    role="tractor" if cam.role == "tractor" else "trailer",
                    text=final.text, confidence=final.confidence, grammar=final.grammar,
                    bbox=final.bbox, frames=final.frames,
                    candidates=tuple(PlateCandidate(text=t, confidence=c)
                                     for t, c in final.candidates),
                    frame_time=datetime.now(UTC))
                out.put(("plate", read.model_dump(mode="json"), _evidence(final.crop)))
            else:
                cread = ContainerRead(lane=lane, camera=cam.name, text=final.text,
                                      confidence=final.confidence,
                                      frame_time=datetime.now(UTC))
                out.put(("container", cread.model_dump(mode="json"), _evidence(final.crop)))
    log.info("camera %s: %d frames, %d objects read, %d left unread (already final)",
             cam.name, live.stats.frames, live.stats.read, live.stats.skipped)
    out.put(("stopped", {"camera": cam.name, **capture.stats.__dict__}, None))


class CameraWorker:
    """Handle of one camera's worker process, used from the asyncio daemon."""

    def __init__(self, camera: CameraConfig, reader: ReaderConfig, lane: str) -> None:
        ctx = mp.get_context("spawn")  # no forked onnxruntime / OpenCV state
        self.name = camera.name
        self.queue: Any = ctx.Queue(maxsize=100)
        self.stop_event = ctx.Event()
        self.occupied = ctx.Event()
        self.process = ctx.Process(
            target=worker_main, name=f"camera-{camera.name}", daemon=True,
            args=(camera.model_dump(mode="json"), reader.model_dump(mode="json"), lane,
                  self.queue, self.stop_event, self.occupied,
                  logging.getLogger().getEffectiveLevel(), os.getpid()))

    def start(self) -> None:
        """Start the process."""
        self.process.start()

    def get(self, timeout: float | None = None) -> tuple[str, dict[str, Any], bytes | None]:
        """Blocking read of the next message (kind, payload, evidence JPEG)."""
        item: tuple[str, dict[str, Any], bytes | None] = self.queue.get(timeout=timeout)
        return item

    async def next_read(self, timeout: float | None = None
                        ) -> tuple[str, dict[str, Any], bytes | None] | None:
        """Await the next final read without blocking the event loop; None on timeout."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self.get, timeout)
        except queue.Empty:
            return None

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the worker to finish, then make sure it is gone."""
        self.stop_event.set()
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("camera worker %s did not stop in %.0f s; terminating", self.name,
                        timeout)
            self.process.terminate()
            self.process.join(5)
        self.queue.close()
        self.queue.join_thread()
