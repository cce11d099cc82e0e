"""What the simulated devices put on the wire, written from docs/protocols.md.

Deliberately independent of ``edge.seals.protocol``: the simulator is the stand-in for a
vendor's device, so sharing the driver's encoder would let one bug hide in both. The tests pin
both sides to the byte vectors of the spec.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping

STX, ETX, DLE = b"\x02", b"\x03", b"\x10"
STATUS_LETTERS = {"I": "I", "O": "O", "T": "T", "INTACT": "I", "OPENED": "O", "TAMPERED": "T"}


def crc16(payload: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, no final XOR."""
    return binascii.crc_hqx(payload, 0xFFFF)


def stuff(data: bytes) -> bytes:
    """Byte stuffing: STX, ETX, DLE go out as DLE followed by the byte XOR 0x20."""
    return (data.replace(DLE, b"\x10\x30").replace(STX, b"\x10\x22").replace(ETX, b"\x10\x23"))


def eseal_payload(seal: str, status: str = "I", *, rdr: str | None = None, mfr: str | None = None,
                  bat: int | str | None = None, ts: str | None = None,
                  extra: Mapping[str, str] | None = None) -> bytes:
    """The ``key=value;`` payload in the order the spec lists the fields."""
    fields: dict[str, str] = {}
    if rdr is not None:
        fields["rdr"] = rdr
    fields["seal"] = seal
    if mfr is not None:
        fields["mfr"] = mfr
    fields["st"] = STATUS_LETTERS.get(status.upper(), status)
    if bat is not None:
        fields["bat"] = str(bat)
    if ts is not None:
        fields["ts"] = ts
    fields.update(extra or {})
    return "".join(f"{k}={v};" for k, v in fields.items()).encode("ascii")


def eseal_frame(payload: bytes, *, crc: int | None = None) -> bytes:
    """A wire frame; ``crc`` overrides the checksum (to inject a bad CRC)."""
    value = crc16(payload) if crc is None else crc
    return STX + stuff(payload) + ETX + stuff(value.to_bytes(2, "big"))


def barcode_line(code: str, prefix: str = "", suffix: str = "", terminator: bytes = b"\r\n") -> bytes:
    """One scan as the scanner sends it."""
    return (prefix + code + suffix).encode("ascii") + terminator
