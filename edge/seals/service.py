"""All seal readers of a checkpoint, wired from config to the lanes' seal windows.

One ``SerialSealReader`` per configured reader feeds one ``SealWindow`` per lane, which keeps
the collapsed, passage-attached view of the lane's seals. ``on_read`` also receives every read
as it arrives, for the lane's passage assembly (``edge.lanes.assembly.LaneAssembler.add``);
alarms go to one callback (the daemon turns them into outbox alarms and console banners).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from edge.config.lanes import LaneConfig
from edge.domain.model import SealRead
from edge.seals.drivers import ReaderConfig
from edge.seals.reader import AlarmSink, ReadSink, SerialSealReader
from edge.seals.window import SealWindow

logger = logging.getLogger(__name__)


class SealReaderService:
    """Owns the readers and the lane windows; ``start`` in config order, ``stop`` reversed."""

    def __init__(self, readers: Sequence[ReaderConfig], lanes: Sequence[LaneConfig],
                 on_alarm: AlarmSink | None = None, on_read: ReadSink | None = None) -> None:
        by_name = {r.name: r for r in readers}
        self.windows: dict[str, SealWindow] = {}
        self.readers: list[SerialSealReader] = []
        self._on_read = on_read
        for lane in lanes:
            configs = [by_name[name] for name in lane.seal_readers if name in by_name]
            if not configs:
                continue
            self.windows[lane.id] = SealWindow(lane.id, max(c.window_s for c in configs))
            for cfg in configs:
                self.readers.append(SerialSealReader(cfg, lane.id, self._accept, on_alarm))
        unused = set(by_name) - {r.name for r in self.readers}
        for name in sorted(unused):
            logger.warning("seal reader %s is not assigned to any lane; not started", name,
                           extra={"device": name})

    def _accept(self, read: SealRead) -> None:
        # Every read goes on as it came (count=1) so the lane's passage assembly sees each
        # sighting at its own time; the window keeps the collapsed view of the lane.
        self.windows[read.lane].add(read)
        if self._on_read is not None:
            self._on_read(read)

    async def start(self) -> None:
        """Start every reader thread."""
        for reader in self.readers:
            await reader.start()

    async def stop(self) -> None:
        """Stop every reader thread, last started first."""
        for reader in reversed(self.readers):
            await reader.stop()
