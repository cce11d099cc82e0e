"""The daemon's handle on one camera worker process: start, feed reads to the lane, restart.

The heavy work (decode, detect, OCR, vote) happens in the worker process
(``edge.plates.worker``); only final reads and their evidence crops cross over. A worker that
dies (a driver crash, an out-of-memory kill) is restarted with back-off; while it is down the
lane still decides, and a missing plate becomes ``PLATE_NOT_READ``, never an open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from edge.config.cameras import CameraConfig, ReaderConfig
from edge.domain.model import ContainerRead, PlateRead
from edge.plates.worker import CameraWorker

log = logging.getLogger(__name__)

ReadSink = Callable[[PlateRead | ContainerRead, bytes | None], None]


class CameraRunner:
    """Runs one ``CameraWorker`` for one lane and hands its reads to ``sink``."""

    def __init__(self, camera: CameraConfig, reader: ReaderConfig, lane: str) -> None:
        self.camera = camera
        self.reader = reader
        self.lane = lane
        self.name = camera.name
        self.sink: ReadSink | None = None
        self.worker: CameraWorker | None = None
        self.paused = False
        self.restarts = 0
        self.reads = 0
        self._occupied = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Spawn the worker process and start forwarding its reads."""
        await self._spawn()
        self._task = asyncio.create_task(self._forward(), name=f"camera-{self.name}")

    async def stop(self) -> None:
        """Stop forwarding, then stop the worker process."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop, 10.0)
            self.worker = None

    def set_occupied(self, occupied: bool) -> None:
        """Boost the frame rate while a vehicle is on the lane's loops."""
        self._occupied = occupied
        if self.worker is not None:
            (self.worker.occupied.set if occupied else self.worker.occupied.clear)()

    def health(self) -> tuple[bool, str]:
        """(ok, detail) for the console and the watchdog."""
        if self.worker is None or not self.worker.process.is_alive():
            return False, f"worker process not running (restarted {self.restarts} times)"
        return True, f"{self.reads} reads"

    async def _spawn(self) -> None:
        self.worker = CameraWorker(self.camera, self.reader, self.lane)
        await asyncio.to_thread(self.worker.start)
        self.set_occupied(self._occupied)

    async def _forward(self) -> None:
        backoff = 1.0
        while True:
            worker = self.worker
            assert worker is not None
            item = await worker.next_read(timeout=1.0)
            if item is None:
                if not worker.process.is_alive():
                    log.error("camera %s: worker process exited with code %s; restarting in "
                              "%.0f s", self.name, worker.process.exitcode, backoff)
                    await asyncio.to_thread(worker.stop, 1.0)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 60.0)
                    self.restarts += 1
                    await self._spawn()
                continue
            backoff = 1.0
            kind, payload, crop = item
            if kind == "stopped" or self.paused or self.sink is None:
                continue
            try:
                read: PlateRead | ContainerRead = (PlateRead.model_validate(payload)
                                                   if kind == "plate"
                                                   else ContainerRead.model_validate(payload))
            except ValueError as exc:
                log.error("camera %s: worker sent an invalid %s read (%s); dropped", self.name,
                          kind, exc)
                continue
            self.reads += 1
            self.sink(read, crop)
