"""Byte-level codec of the e-seal reader frames: ``STX ESC(payload) ETX ESC(CRC16)``.

The exact format is in docs/protocols.md ("Seal-reader serial protocols"). The decoder is a
streaming one because a serial port delivers arbitrary slices of the byte stream: it keeps an
unfinished frame between calls and resynchronizes on every STX, so one corrupted frame never
costs the next one. It scans with ``bytes.find`` rather than byte by byte, which keeps a
pure-Python decoder well above any real reader's frame rate.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

STX = 0x02
ETX = 0x03
DLE = 0x10
ESCAPE_XOR = 0x20
_CONTROL = (STX, ETX, DLE)
_ESCAPED = {c ^ ESCAPE_XOR: c for c in _CONTROL}  # byte after DLE -> original byte
DEFAULT_MAX_PAYLOAD = 240


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0); check 0x29B1.

    ``binascii.crc_hqx`` is the standard library's C implementation of the 0x1021 polynomial
    with a caller-chosen initial value, so no hand-written table is needed.
    """
    return binascii.crc_hqx(data, 0xFFFF)


def escape(data: bytes) -> bytes:
    """DLE-stuff STX, ETX and DLE as ``DLE, byte ^ 0x20`` so delimiters stay unique."""
    if STX not in data and ETX not in data and DLE not in data:
        return data
    out = bytearray()
    for byte in data:
        if byte in _CONTROL:
            out += bytes((DLE, byte ^ ESCAPE_XOR))
        else:
            out.append(byte)
    return bytes(out)


def unescape(data: bytes) -> bytes | None:
    """Undo :func:`escape`; ``None`` when a DLE is followed by a byte that was never escaped."""
    if DLE not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte == DLE:
            if i + 1 >= n or data[i + 1] not in _ESCAPED:
                return None
            out.append(_ESCAPED[data[i + 1]])
            i += 2
        else:
            out.append(byte)
            i += 1
    return bytes(out)


def encode_payload(fields: Mapping[str, str]) -> bytes:
    """``key=value;`` pairs in the given order, ASCII."""
    return "".join(f"{key}={value};" for key, value in fields.items()).encode("ascii")


def encode_frame(payload: bytes) -> bytes:
    """A complete wire frame for an (unescaped) payload."""
    crc = crc16_ccitt_false(payload)
    return bytes((STX,)) + escape(payload) + bytes((ETX,)) + escape(crc.to_bytes(2, "big"))


class FrameErrorKind(StrEnum):
    """Why bytes on the line did not make a read; the counters and logs use these names."""

    NOISE = "noise"
    TRUNCATED = "truncated"
    TOO_LONG = "too_long"
    BAD_ESCAPE = "bad_escape"
    BAD_CRC = "bad_crc"
    BAD_PAYLOAD = "bad_payload"
    BAD_FIELD = "bad_field"


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame whose CRC checked; ``payload`` is unescaped, ``raw`` is what came off the wire."""

    payload: bytes
    raw: bytes


@dataclass(frozen=True, slots=True)
class FrameError:
    """Bytes that were discarded, with the reason; ``raw`` is logged in hex at DEBUG."""

    kind: FrameErrorKind
    raw: bytes
    detail: str = ""


class FrameDecoder:
    """Streaming decoder: ``feed`` bytes in any slicing, get frames and errors in order."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        # Raw bytes between STX and ETX may be up to twice the payload (every byte escaped).
        self._max_body = 2 * max_payload
        self._buf = bytearray()
        self._skipping = False  # inside a too-long frame: drop bytes until the next STX

    @property
    def pending(self) -> bool:
        """A frame has started and is not finished yet (for the inter-frame timeout)."""
        return bool(self._buf) and self._buf[0] == STX

    def reset(self) -> FrameError | None:
        """Drop an unfinished frame (timeout, port closed); reports it as truncated."""
        raw, self._buf = bytes(self._buf), bytearray()
        self._skipping = False
        if raw:
            return FrameError(FrameErrorKind.TRUNCATED, raw, "frame not finished before timeout")
        return None

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Decode as much as possible; an unfinished frame is kept for the next call."""
        out: list[Frame | FrameError] = []
        buf = self._buf
        buf += data
        pos = 0
        n = len(buf)
        while pos < n:
            start = buf.find(STX, pos)
            if start < 0:
                self._noise(buf[pos:], out)
                pos = n
                break
            if start > pos:
                self._noise(buf[pos:start], out)
            self._skipping = False
            pos = self._frame_at(buf, start, out)
            if pos < 0:  # unfinished: keep from start
                del buf[:start]
                return out
        buf.clear()
        return out

    def _noise(self, raw: bytearray, out: list[Frame | FrameError]) -> None:
        if self._skipping:
            return
        out.append(FrameError(FrameErrorKind.NOISE, bytes(raw), f"{len(raw)} bytes outside a frame"))

    def _frame_at(self, buf: bytearray, start: int, out: list[Frame | FrameError]) -> int:
        """Decode the frame starting at ``start``; returns where to continue, -1 if unfinished."""
        n = len(buf)
        etx = buf.find(ETX, start + 1)
        nxt = buf.find(STX, start + 1)
        if nxt >= 0 and (etx < 0 or nxt < etx):
            # A new STX before this frame's ETX: the frame was cut short.
            return self._discard_or_truncate(buf, start, nxt, out)
        if etx < 0:
            if n - start - 1 > self._max_body:
                out.append(FrameError(FrameErrorKind.TOO_LONG, bytes(buf[start:start + 64]),
                                      f"no ETX within {self._max_body} bytes"))
                self._skipping = True
                return n
            return -1
        if etx - start - 1 > self._max_body:
            out.append(FrameError(FrameErrorKind.TOO_LONG, bytes(buf[start:start + 64]),
                                  f"payload of {etx - start - 1} wire bytes"))
            return etx + 1
        # Two CRC bytes follow ETX, each possibly escaped (DLE + byte).
        crc = bytearray()
        i = etx + 1
        while len(crc) < 2:
            if i >= n:
                return -1
            byte = buf[i]
            if byte == STX:
                return self._discard_or_truncate(buf, start, i, out)
            if byte == ETX:
                out.append(FrameError(FrameErrorKind.BAD_ESCAPE, bytes(buf[start:i + 1]),
                                      "ETX inside the CRC"))
                return i + 1
            if byte == DLE:
                if i + 1 >= n:
                    return -1
                nb = buf[i + 1]
                if nb == STX:
                    return self._discard_or_truncate(buf, start, i + 1, out)
                if nb not in _ESCAPED:
                    out.append(FrameError(FrameErrorKind.BAD_ESCAPE, bytes(buf[start:i + 2]),
                                          f"DLE followed by {nb:#04x} in the CRC"))
                    return i + 2
                crc.append(_ESCAPED[nb])
                i += 2
            else:
                crc.append(byte)
                i += 1
        raw = bytes(buf[start:i])
        payload = unescape(bytes(buf[start + 1:etx]))
        if payload is None:
            out.append(FrameError(FrameErrorKind.BAD_ESCAPE, raw, "DLE followed by a byte never escaped"))
        elif not payload:
            out.append(FrameError(FrameErrorKind.BAD_PAYLOAD, raw, "empty payload"))
        elif len(payload) > self.max_payload:
            out.append(FrameError(FrameErrorKind.TOO_LONG, raw, f"payload of {len(payload)} bytes"))
        else:
            expected = crc16_ccitt_false(payload)
            got = int.from_bytes(crc, "big")
            if got != expected:
                out.append(FrameError(FrameErrorKind.BAD_CRC, raw,
                                      f"CRC {got:#06x}, computed {expected:#06x}"))
            else:
                out.append(Frame(payload, raw))
        return i

    @staticmethod
    def _discard_or_truncate(buf: bytearray, start: int, nxt: int,
                             out: list[Frame | FrameError]) -> int:
        out.append(FrameError(FrameErrorKind.TRUNCATED, bytes(buf[start:nxt]),
                              "STX before the frame ended"))
        return nxt


class PayloadError(ValueError):
    """The payload is not a ``key=value;`` list as the protocol defines it."""


_KEY_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_")


def parse_payload(payload: bytes) -> dict[str, str]:
    """Split ``key=value;`` pairs; raises :class:`PayloadError` naming the problem."""
    for byte in payload:
        if byte < 0x20 or byte > 0x7E:
            raise PayloadError(f"byte {byte:#04x} is not printable ASCII")
    text = payload.decode("ascii")
    fields: dict[str, str] = {}
    parts = text.split(";")
    if parts and parts[-1] == "":
        parts.pop()
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            raise PayloadError(f"field {part[:20]!r} has no '='")
        if not key or len(key) > 16 or not key[0].isalpha() or not set(key.encode()) <= _KEY_CHARS:
            raise PayloadError(f"bad key {key[:20]!r}")
        if "=" in value or len(value) > 64:
            raise PayloadError(f"bad value for {key!r}")
        if key in fields:
            raise PayloadError(f"duplicate key {key!r}")
        fields[key] = value
    return fields
