"""Error accounting of one seal reader: counters, rate-limited logs and the alarm states.

A reader on a bad cable can produce hundreds of broken frames a second. Each is counted and
dumped in hex at DEBUG (STYLE.md §8), but WARNING shows the first of each kind and then one
summary per ``log_every_s``, so the journal stays readable and the disk does not fill.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from edge.seals.protocol import FrameError

logger = logging.getLogger(__name__)

_HEX_LIMIT = 512


class AlarmKind(StrEnum):
    """Why a reader needs attention."""

    DISCONNECTED = "SEAL_READER_DISCONNECTED"
    ERRORS = "SEAL_READER_ERRORS"


@dataclass(frozen=True, slots=True)
class ReaderAlarm:
    """Raised (``active=True``) or cleared (``active=False``) for one reader."""

    reader: str
    lane: str
    kind: AlarmKind
    active: bool
    message: str
    at: datetime


@dataclass
class ReaderStats:
    """Counters a health page or ``/metrics`` can show; updated by the reader's thread only."""

    reads: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    bytes_in: int = 0
    connects: int = 0
    disconnects: int = 0
    connected: bool = False
    alarms: set[AlarmKind] = field(default_factory=set)

    @property
    def error_total(self) -> int:
        """All errors of every kind."""
        return sum(self.errors.values())


class ErrorLog:
    """Logs frame errors of one device: all in hex at DEBUG, WARNING rate-limited per kind."""

    def __init__(self, device: str, lane: str, every_s: float) -> None:
        self.device = device
        self.lane = lane
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self.warnings_logged = 0

    def record(self, error: FrameError, mono: float) -> None:
        """Log one error; ``mono`` is a monotonic clock reading."""
        extra = {"device": self.device, "lane": self.lane}
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s frame (%d bytes): %s: %s", error.kind.value, len(error.raw),
                         error.raw[:_HEX_LIMIT].hex(" "), error.detail, extra=extra)
        kind = error.kind.value
        last = self._last.get(kind)
        if last is not None and mono - last < self.every_s:
            self._suppressed[kind] += 1
            return
        self._last[kind] = mono
        suppressed = self._suppressed.pop(kind, 0)
        tail = f" ({suppressed} more since the last report)" if suppressed else ""
        self.warnings_logged += 1
        logger.warning("seal reader: %s frame discarded: %s%s", kind, error.detail, tail, extra=extra)


class ErrorRate:
    """Sliding-window error count for the error alarm."""

    def __init__(self, threshold: int, window_s: float) -> None:
        self.threshold = threshold
        self.window_s = window_s
        # Bounded: once the threshold is reached, older errors add nothing to the decision.
        self._times: deque[float] = deque(maxlen=threshold)

    def add(self, mono: float) -> None:
        """Count one error at this monotonic time."""
        self._times.append(mono)
        self._expire(mono)

    def count(self, mono: float) -> int:
        """Errors within the window ending now."""
        self._expire(mono)
        return len(self._times)

    def _expire(self, mono: float) -> None:
        while self._times and mono - self._times[0] > self.window_s:
            self._times.popleft()
