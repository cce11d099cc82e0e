"""RFID e-seal reader (``type: eseal``): framed ``key=value;`` payloads, ISO 18185-like data.

Frame decoding lives in ``edge.seals.protocol``; this module maps fields onto ``SealRead`` and
decides what a doubtful field means for the officer (docs/protocols.md lists every case).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from edge.config.seal_readers import ESealReaderConfig
from edge.domain.model import SEAL_ID_PATTERN, SealRead, SealStatus, SealType, normalize_seal_id
from edge.seals.drivers.base import Decoded, ReaderConfig, SealDriver, register
from edge.seals.protocol import (
    Frame,
    FrameDecoder,
    FrameError,
    FrameErrorKind,
    PayloadError,
    parse_payload,
)

logger = logging.getLogger(__name__)

STATUS_CODES = {"I": SealStatus.INTACT, "O": SealStatus.OPENED, "T": SealStatus.TAMPERED}
STATUS_LETTERS = {status: letter for letter, status in STATUS_CODES.items()}
KNOWN_KEYS = frozenset({"rdr", "seal", "mfr", "st", "bat", "ts"})
_TS = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_SEAL_ID = re.compile(SEAL_ID_PATTERN)


def valid_seal_id(seal_id: str) -> bool:
    """Seal ids after normalization (upper case, no spaces) as DESIGN-NOTES §3 defines them."""
    return _SEAL_ID.match(seal_id) is not None


def valid_timestamp(text: str) -> bool:
    """``YYYYMMDDThhmmssZ`` naming a real UTC instant (checked without strptime, 10x cheaper)."""
    if _TS.fullmatch(text) is None:
        return False
    try:
        datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]), int(text[11:13]),
                 int(text[13:15]), tzinfo=UTC)
    except ValueError:
        return False
    return True


@register("eseal")
class ESealDriver(SealDriver):
    """Decodes e-seal frames; a frame with a doubtful field becomes a ``malformed`` read."""

    def __init__(self, config: ReaderConfig, lane: str) -> None:
        super().__init__(config, lane)
        max_payload = config.max_payload_bytes if isinstance(config, ESealReaderConfig) else 240
        self._decoder = FrameDecoder(max_payload)
        self._unknown_keys_seen: set[str] = set()

    @property
    def pending(self) -> bool:
        """An unfinished frame is buffered."""
        return self._decoder.pending

    def reset(self) -> FrameError | None:
        """Drop a half-received frame."""
        return self._decoder.reset()

    def feed(self, data: bytes, now: datetime) -> Decoded:
        """Decode bytes into reads; every discarded byte is accounted for in ``errors``."""
        result = Decoded()
        for item in self._decoder.feed(data):
            if isinstance(item, Frame):
                self._read_from(item, now, result)
            else:
                result.errors.append(item)
        return result

    def _read_from(self, frame: Frame, now: datetime, result: Decoded) -> None:
        try:
            fields = parse_payload(frame.payload)
        except PayloadError as exc:
            result.errors.append(FrameError(FrameErrorKind.BAD_PAYLOAD, frame.raw, str(exc)))
            return
        if "seal" not in fields:
            result.errors.append(FrameError(FrameErrorKind.BAD_PAYLOAD, frame.raw, "no 'seal' field"))
            return
        for key in fields.keys() - KNOWN_KEYS - self._unknown_keys_seen:
            self._unknown_keys_seen.add(key)
            logger.info("e-seal reader sends unknown field %r; ignored (kept in raw)", key,
                        extra={"device": self.config.name, "lane": self.lane})
        problems: list[str] = []
        seal_id = normalize_seal_id(fields["seal"])
        malformed = not valid_seal_id(seal_id)
        status = STATUS_CODES.get(fields.get("st", ""), SealStatus.UNKNOWN)
        if status is SealStatus.UNKNOWN:
            problems.append(f"status {fields.get('st')!r} is not I, O or T")
        battery: int | None = None
        if "bat" in fields:
            text = fields["bat"]
            if text.isdigit() and 0 <= int(text) <= 100:
                battery = int(text)
            else:
                problems.append(f"battery {text!r} is not 0-100")
        if "ts" in fields and not valid_timestamp(fields["ts"]):
            problems.append(f"timestamp {fields['ts']!r} is not YYYYMMDDThhmmssZ")
        if problems:
            result.errors.append(FrameError(FrameErrorKind.BAD_FIELD, frame.raw, "; ".join(problems)))
        result.reads.append(SealRead(
            lane=self.lane,
            reader=self.config.name,
            seal_id=seal_id,
            kind=SealType.ESEAL,
            status=status,
            manufacturer=fields.get("mfr") or None,
            battery=battery,
            malformed=malformed or bool(problems),
            read_at=now,
            raw=frame.payload.decode("ascii"),
        ))
