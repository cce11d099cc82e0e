"""The e-seal wire format: CRC vectors, stuffing, golden frames and the streaming decoder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.seals.protocol import (
    DLE,
    ETX,
    STX,
    Frame,
    FrameDecoder,
    FrameError,
    FrameErrorKind,
    PayloadError,
    crc16_ccitt_false,
    encode_frame,
    encode_payload,
    escape,
    parse_payload,
    unescape,
)
from simulators.seals import wire

# Vectors from docs/protocols.md, "Byte vectors".
DOC_PAYLOAD = b"rdr=R1;seal=ABCD1234;mfr=ACME;st=I;bat=87;ts=20261123T082501Z;"
GOLDEN = [
    (DOC_PAYLOAD, b"\x02" + DOC_PAYLOAD + b"\x03\x49\x01"),
    (b"seal=SEAL00000;st=I;", b"\x02seal=SEAL00000;st=I;\x03\xda\x10\x22"),
    (b"seal=SEAL00098;st=I;", b"\x02seal=SEAL00098;st=I;\x03\x10\x30\xa6"),
]


def crc_bitwise(data: bytes) -> int:
    """Reference CRC-16/CCITT-FALSE, bit by bit, straight from the parameter set."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


@pytest.mark.parametrize(("data", "expected"), [
    (b"123456789", 0x29B1),  # the catalogue's check value for CRC-16/CCITT-FALSE
    (b"", 0xFFFF),  # init value, no xorout
    (b"A", 0xB915),
    (DOC_PAYLOAD, 0x4901),
])
def test_crc_published_and_documented_vectors(data: bytes, expected: int) -> None:
    assert crc16_ccitt_false(data) == expected
    assert wire.crc16(data) == expected
    assert crc_bitwise(data) == expected


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_crc_matches_bitwise_reference(data: bytes) -> None:
    assert crc16_ccitt_false(data) == crc_bitwise(data)


@pytest.mark.parametrize(("payload", "frame"), GOLDEN)
def test_golden_frames_driver_and_simulator_agree(payload: bytes, frame: bytes) -> None:
    assert encode_frame(payload) == frame
    assert wire.eseal_frame(payload) == frame
    assert FrameDecoder().feed(frame) == [Frame(payload, frame)]


def test_escaping_of_each_control_byte() -> None:
    assert escape(bytes([STX, ETX, DLE, 0x41])) == b"\x10\x22\x10\x23\x10\x30\x41"
    assert wire.stuff(bytes([STX, ETX, DLE, 0x41])) == b"\x10\x22\x10\x23\x10\x30\x41"
    assert unescape(b"\x10\x22\x10\x23\x10\x30\x41") == bytes([STX, ETX, DLE, 0x41])
    assert unescape(b"\x10\x41") is None  # DLE before a byte that is never escaped
    assert unescape(b"A\x10") is None  # DLE at the end


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_escape_roundtrip_and_no_bare_delimiters(data: bytes) -> None:
    stuffed = escape(data)
    assert STX not in stuffed and ETX not in stuffed
    assert unescape(stuffed) == data
    assert wire.stuff(data) == stuffed


@settings(deadline=None)
@given(st.binary(min_size=1, max_size=240))
def test_any_binary_payload_survives_the_frame(payload: bytes) -> None:
    frame = encode_frame(payload)
    assert frame.count(STX) == 1 and frame[0] == STX
    assert FrameDecoder().feed(frame) == [Frame(payload, frame)]


def kinds(items: list[Frame | FrameError]) -> list[str]:
    return ["frame" if isinstance(x, Frame) else x.kind.value for x in items]


def test_resync_after_garbage_and_truncation() -> None:
    good = encode_frame(b"seal=GOOD0001;st=I;")
    stream = b"\xff\x00garbage\x03\x10" + good[:9] + good + b"junk" + good
    out = FrameDecoder().feed(stream)
    assert kinds(out) == ["noise", "truncated", "frame", "noise", "frame"]
    assert out[1].raw == good[:9]


def test_bad_crc_is_reported_and_next_frame_decodes() -> None:
    payload = b"seal=GOOD0001;st=I;"
    bad = wire.eseal_frame(payload, crc=crc16_ccitt_false(payload) ^ 1)
    out = FrameDecoder().feed(bad + encode_frame(payload))
    assert kinds(out) == ["bad_crc", "frame"]
    assert isinstance(out[0], FrameError) and "computed" in out[0].detail


def test_stx_inside_crc_restarts() -> None:
    good = encode_frame(b"seal=GOOD0001;st=I;")
    cut = b"\x02seal=X1234;st=I;\x03\x41"  # one CRC byte, then a new frame
    assert kinds(FrameDecoder().feed(cut + good)) == ["truncated", "frame"]
    dle_then_stx = b"\x02seal=X1234;st=I;\x03\x10"
    assert kinds(FrameDecoder().feed(dle_then_stx + good)) == ["truncated", "frame"]


def test_bad_escapes() -> None:
    good = encode_frame(b"seal=GOOD0001;st=I;")
    assert kinds(FrameDecoder().feed(b"\x02ab\x10\x41cd\x03\x00\x00" + good)) == ["bad_escape", "frame"]
    assert kinds(FrameDecoder().feed(b"\x02abcd\x03\x41\x03" + good)) == ["bad_escape", "frame"]
    assert kinds(FrameDecoder().feed(b"\x02abcd\x03\x10\x41" + good)) == ["bad_escape", "frame"]


def test_empty_payload_is_an_error() -> None:
    assert kinds(FrameDecoder().feed(encode_frame(b""))) == ["bad_payload"]


def test_too_long_frames_are_skipped_to_the_next_stx() -> None:
    dec = FrameDecoder(max_payload=32)
    good = encode_frame(b"seal=GOOD0001;st=I;")
    # Complete but too long.
    assert kinds(dec.feed(encode_frame(b"A" * 33) + good)) == ["too_long", "frame"]
    # Escaped bytes count once: 32 DLE-escaped bytes are fine.
    assert kinds(dec.feed(encode_frame(bytes([DLE]) * 32))) == ["frame"]
    # Never terminated: reported once, the rest swallowed without noise reports.
    out = dec.feed(b"\x02" + b"B" * 100)
    assert kinds(out) == ["too_long"]
    assert kinds(dec.feed(b"C" * 50)) == []
    assert kinds(dec.feed(b"D" * 5 + good)) == ["frame"]


def test_byte_by_byte_feeding_equals_one_shot() -> None:
    frames = [encode_frame(wire.eseal_payload(f"SEAL{i:05d}", "IOT"[i % 3])) for i in range(40)]
    stream = b"xx".join(frames)
    one = FrameDecoder().feed(stream)
    dec = FrameDecoder()
    split: list[Frame | FrameError] = []
    for i in range(len(stream)):
        split += dec.feed(stream[i:i + 1])
    assert [x for x in split if isinstance(x, Frame)] == [x for x in one if isinstance(x, Frame)]
    assert len([x for x in one if isinstance(x, Frame)]) == 40


def test_pending_and_reset() -> None:
    dec = FrameDecoder()
    frame = encode_frame(b"seal=GOOD0001;st=I;")
    assert dec.feed(frame[:5]) == []
    assert dec.pending
    err = dec.reset()
    assert err is not None and err.kind is FrameErrorKind.TRUNCATED and err.raw == frame[:5]
    assert not dec.pending and dec.reset() is None
    assert dec.feed(frame) == [Frame(b"seal=GOOD0001;st=I;", frame)]


def test_payload_fields() -> None:
    assert parse_payload(DOC_PAYLOAD) == {"rdr": "R1", "seal": "ABCD1234", "mfr": "ACME", "st": "I",
                                          "bat": "87", "ts": "20261123T082501Z"}
    assert parse_payload(b"seal=A;st=I") == {"seal": "A", "st": "I"}  # final ';' optional
    assert encode_payload({"seal": "A", "st": "I"}) == b"seal=A;st=I;"


@pytest.mark.parametrize(("payload", "problem"), [
    (b"seal=A;seal=B;", "duplicate"),
    (b"seal=A;nokey;", "no '='"),
    (b"Seal=A;", "bad key"),
    (b"=A;", "bad key"),
    (b"seal=A=B;", "bad value"),
    (b"seal=\x01A;", "printable"),
    (b"seal=\xc3\xa9;", "printable"),
    (b"seal=" + b"A" * 65 + b";", "bad value"),
])
def test_payload_errors_name_the_problem(payload: bytes, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        parse_payload(payload)


def test_vectors_printed_in_the_spec_match_the_code() -> None:
    """docs/protocols.md shows frames as ``02 "payload" 03 CRC...``; the code must agree."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "protocols.md").read_text(encoding="utf-8")
    section = doc.split("## Seal-reader serial protocols", 1)[1]
    vectors = re.findall(r'^02 "([^"]+)" 03 ((?:[0-9A-F]{2} ?)+)$', section, flags=re.M)
    assert len(vectors) == 3
    for payload, crc_hex in vectors:
        frame = b"\x02" + payload.encode() + b"\x03" + bytes.fromhex(crc_hex)
        assert encode_frame(payload.encode()) == frame
        assert wire.eseal_frame(payload.encode()) == frame
    barcode = re.search(r"arrives as\n`((?:[0-9A-F]{2} ?)+)`", section)
    assert barcode is not None
    assert wire.barcode_line("EU 1234567", prefix="]C0") == bytes.fromhex(barcode.group(1))
