"""Attach seal reads to the lane's current passage by time, collapsing repeats.

An e-seal reader reports a tag many times a second while the truck stands in its field, and
an officer may scan the same bolt seal twice. The matcher wants one read per seal, so repeats
of a seal within ``window_s`` of its last sighting collapse into one ``SealRead`` whose
``count`` says how often it was seen. Reads are kept from ``window_s`` before a passage
starts (the reader often sees the truck before the loop detector does) until the passage ends.
When a passage ends its seals are remembered for another ``window_s`` so the departing truck,
still in the reader's field, does not lend its seal to the next truck.

Used on the event loop only (no locking).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from edge.domain.model import SealRead, SealStatus, SealType

logger = logging.getLogger(__name__)

# The most alarming status wins when sightings of one seal disagree. "unknown" (an e-seal frame
# whose status field was unreadable) outranks "intact": doubt must never be overwritten by a
# reassuring read. Same order as the lane assembler (edge/lanes/assembly.py).
_SEVERITY = {SealStatus.INTACT: 0, SealStatus.UNKNOWN: 1, SealStatus.OPENED: 2, SealStatus.TAMPERED: 3}

_Key = tuple[str, SealType]


@dataclass
class _Sighting:
    read: SealRead
    last_seen: datetime


def merge(first: SealRead, later: SealRead) -> SealRead:
    """One read for two sightings of the same seal: worst status, latest battery, count summed."""
    status = first.status if _SEVERITY[first.status] >= _SEVERITY[later.status] else later.status
    return first.model_copy(update={
        "count": first.count + later.count,
        "status": status,
        "malformed": first.malformed or later.malformed,
        "battery": later.battery if later.battery is not None else first.battery,
        "manufacturer": later.manufacturer or first.manufacturer,
        "raw": later.raw or first.raw,
    })


class SealWindow:
    """The seal reads of one lane and the passage they belong to."""

    def __init__(self, lane: str, window_s: float) -> None:
        self.lane = lane
        self.window = timedelta(seconds=window_s)
        self.passage_id: str | None = None
        self.passage_start: datetime | None = None
        self._open: dict[_Key, _Sighting] = {}
        self._closed: dict[_Key, _Sighting] = {}

    def add(self, read: SealRead) -> SealRead | None:
        """Take a read; returns the collapsed read it became.

        ``None`` means the read is the tail of the previous passage's seal and stays there.
        """
        now = read.read_at
        self._expire(now)
        key = (read.seal_id, read.kind)
        tail = self._closed.get(key)
        if tail is not None:
            tail.read = merge(tail.read, read)
            tail.last_seen = now
            logger.debug("seal %s still in view after its passage ended", read.seal_id,
                         extra={"lane": self.lane})
            return None
        seen = self._open.get(key)
        if seen is None:
            self._open[key] = _Sighting(read, now)
            return read
        seen.read = merge(seen.read, read)
        seen.last_seen = max(seen.last_seen, now)
        return seen.read

    def begin_passage(self, passage_id: str, at: datetime) -> None:
        """A vehicle arrived: reads from ``window_s`` before ``at`` on belong to it."""
        if self.passage_id is not None:
            logger.warning("passage %s began before %s ended; its seal reads carry over",
                           passage_id, self.passage_id, extra={"lane": self.lane})
        self.passage_id = passage_id
        self.passage_start = at
        self._expire(at)

    def current(self, now: datetime | None = None) -> tuple[SealRead, ...]:
        """The collapsed reads of the current passage (or of the last ``window_s`` if none)."""
        if now is not None:
            self._expire(now)
        return tuple(s.read for s in sorted(self._open.values(), key=lambda s: s.read.read_at))

    def end_passage(self, at: datetime) -> tuple[SealRead, ...]:
        """The passage is over: hand back its reads and keep their seals from the next truck."""
        reads = self.current(at)
        for key, sighting in self._open.items():
            self._closed[key] = sighting
        self._open.clear()
        self.passage_id = None
        self.passage_start = None
        return reads

    def _expire(self, now: datetime) -> None:
        for key, sighting in list(self._closed.items()):
            if now - sighting.last_seen > self.window:
                del self._closed[key]
        if self.passage_id is not None:
            # A passage in progress keeps everything seen since window_s before its start.
            assert self.passage_start is not None
            horizon = self.passage_start - self.window
            for key, sighting in list(self._open.items()):
                if sighting.last_seen < horizon:
                    del self._open[key]
            return
        for key, sighting in list(self._open.items()):
            if now - sighting.last_seen > self.window:
                logger.info("seal %s read with no passage at lane; expired after %s",
                            sighting.read.seal_id, self.window, extra={"lane": self.lane})
                del self._open[key]
