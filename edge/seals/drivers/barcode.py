"""Bolt-seal barcode scanner (``type: barcode``): one ASCII line per scan, CR LF terminated.

ISO 17712 requires a high-security bolt seal to carry a unique id, which manufacturers print
as text and as a barcode; the scanner just types it down the serial line. A bolt seal cannot
report tampering, so reads carry ``status=unknown``.
"""

from __future__ import annotations

import logging
from datetime import datetime

from edge.config.seal_readers import BarcodeScannerConfig
from edge.domain.model import SealRead, SealStatus, SealType, normalize_seal_id
from edge.seals.drivers.base import Decoded, ReaderConfig, SealDriver, register
from edge.seals.drivers.eseal import valid_seal_id
from edge.seals.protocol import FrameError, FrameErrorKind

logger = logging.getLogger(__name__)

CR = 0x0D
LF = 0x0A


@register("barcode")
class BarcodeDriver(SealDriver):
    """Splits lines on CR or LF, strips the configured prefix/suffix, validates the seal id."""

    def __init__(self, config: ReaderConfig, lane: str) -> None:
        super().__init__(config, lane)
        if isinstance(config, BarcodeScannerConfig):
            self._prefix, self._suffix = config.strip_prefix, config.strip_suffix
            self._max = config.max_line_chars
        else:
            self._prefix, self._suffix, self._max = "", "", 64
        self._buf = bytearray()
        self._too_long = False  # discarding an over-long line up to its terminator

    @property
    def pending(self) -> bool:
        """Part of a line is buffered."""
        return bool(self._buf)

    def reset(self) -> FrameError | None:
        """Drop a partial line (a scan cut off by a timeout or an unplug)."""
        raw, self._buf = bytes(self._buf), bytearray()
        self._too_long = False
        if raw:
            return FrameError(FrameErrorKind.TRUNCATED, raw, "line without terminator")
        return None

    def feed(self, data: bytes, now: datetime) -> Decoded:
        """Decode complete lines; a partial line waits for its terminator."""
        result = Decoded()
        buf = self._buf
        buf += data
        start = 0
        n = len(buf)
        while start < n:
            cr = buf.find(CR, start)
            lf = buf.find(LF, start)
            ends = [x for x in (cr, lf) if x >= 0]
            if not ends:
                break
            end = min(ends)
            self._line(bytes(buf[start:end]), now, result)
            start = end + 1
        del buf[:start]
        if len(buf) > self._max and not self._too_long:
            result.errors.append(FrameError(FrameErrorKind.TOO_LONG, bytes(buf[:64]),
                                            f"no line end within {self._max} characters"))
            self._too_long = True
        if self._too_long:
            buf.clear()
        return result

    def _line(self, raw: bytes, now: datetime, result: Decoded) -> None:
        if self._too_long:  # the tail of a line already reported as too long
            self._too_long = False
            return
        if not raw:
            return  # the LF of CR LF, or a blank line
        if len(raw) > self._max:
            result.errors.append(FrameError(FrameErrorKind.TOO_LONG, raw[:64],
                                            f"line of {len(raw)} characters"))
            return
        if any(b < 0x20 or b > 0x7E for b in raw):
            result.errors.append(FrameError(FrameErrorKind.BAD_PAYLOAD, raw,
                                            "control or non-ASCII bytes in a scan"))
            return
        text = raw.decode("ascii")
        if self._prefix:
            if text.startswith(self._prefix):
                text = text[len(self._prefix):]
            else:
                logger.debug("scan without the configured prefix %r: %r", self._prefix, text,
                             extra={"device": self.config.name, "lane": self.lane})
        if self._suffix and text.endswith(self._suffix):
            text = text[: -len(self._suffix)]
        seal_id = normalize_seal_id(text)
        if not seal_id:
            return  # only prefix/suffix or spaces: a scanner heartbeat, nothing read
        result.reads.append(SealRead(
            lane=self.lane,
            reader=self.config.name,
            seal_id=seal_id,
            kind=SealType.BOLT,
            status=SealStatus.UNKNOWN,
            malformed=not valid_seal_id(seal_id),
            read_at=now,
            raw=raw.decode("ascii"),
        ))
