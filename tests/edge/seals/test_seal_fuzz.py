"""Fuzzing the byte stream: the drivers never raise and deliver every valid frame exactly once."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config.seal_readers import BarcodeScannerConfig, ESealReaderConfig
from edge.seals.drivers import create_driver
from edge.seals.protocol import ETX
from simulators.seals import wire

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ESEAL = ESealReaderConfig(type="eseal", name="fuzz", port="/dev/null")
BARCODE = BarcodeScannerConfig(type="barcode", name="fuzz", port="/dev/null")

seal_ids = st.from_regex(r"[A-Z0-9][A-Z0-9\-]{3,20}", fullmatch=True)
statuses = st.sampled_from("IOT")
frames = st.builds(lambda seal, status, bat: (seal, wire.eseal_frame(
    wire.eseal_payload(seal, status, rdr="R9", mfr="ACME", bat=bat))), seal_ids, statuses,
    st.integers(0, 100))
noise = st.binary(max_size=80)


def feed_in_chunks(driver_type: str, stream: bytes, cuts: list[int]) -> tuple[list[str], int]:
    driver = create_driver(ESEAL if driver_type == "eseal" else BARCODE, "in-1")
    seals: list[str] = []
    errors = 0
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for a, b in itertools.pairwise(points):
        out = driver.feed(stream[a:b], NOW)
        seals += [r.seal_id for r in out.reads]
        errors += len(out.errors)
    tail = driver.reset()
    return seals, errors + (tail is not None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.lists(st.integers(0, 5000), max_size=20))
def test_random_bytes_never_raise(stream: bytes, cuts: list[int]) -> None:
    for kind in ("eseal", "barcode"):
        seals, _ = feed_in_chunks(kind, stream, cuts)
        assert all(isinstance(s, str) for s in seals)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(noise, frames), max_size=12), noise,
       st.lists(st.integers(0, 5000), max_size=30))
def test_valid_frames_between_noise_arrive_exactly_once(
        parts: list[tuple[bytes, tuple[str, bytes]]], trailing: bytes, cuts: list[int]) -> None:
    # Noise may contain STX, ETX and DLE: a pseudo-frame it opens is abandoned at the next real
    # STX. Only the last piece of noise before a frame must not end in the middle of nothing:
    # that is guaranteed because every real frame starts with STX.
    stream = b"".join(n + f for n, (_, f) in parts) + trailing
    seals, _ = feed_in_chunks("eseal", stream, cuts)
    assert seals == [seal for _, (seal, _) in parts]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b),
                          seal_ids), max_size=10),
       st.lists(st.integers(0, 3000), max_size=20))
def test_barcode_lines_between_noise_lines(parts: list[tuple[bytes, str]], cuts: list[int]) -> None:
    # Noise made into a line of its own with a control byte: never a read.
    stream = b"".join(b"\x00" + n + b"\r\n" + wire.barcode_line(code) for n, code in parts)
    seals, errors = feed_in_chunks("barcode", stream, cuts)
    assert seals == [code for _, code in parts]
    assert errors == len(parts)


@settings(max_examples=150, deadline=None)
@given(st.lists(frames, min_size=1, max_size=8), st.data())
def test_every_corruption_is_counted_and_neighbours_survive(
        items: list[tuple[str, bytes]], data: st.DataObject) -> None:
    # Flip one byte of one frame (never into a new STX): its neighbours still arrive, and the
    # damaged frame is counted as an error unless (odds ~1/65536) it still passes the CRC.
    idx = data.draw(st.integers(0, len(items) - 1))
    _seal, frame = items[idx]
    pos = data.draw(st.integers(1, len(frame) - 1))
    flip = data.draw(st.integers(1, 255))
    bad = bytearray(frame)
    bad[pos] ^= flip
    if 0x02 in bad[1:]:
        bad[bad.index(0x02, 1)] = ETX  # keep the test about corruption, not about a new STX
    stream = b"".join(bytes(bad) if i == idx else f for i, (_, f) in enumerate(items))
    driver = create_driver(ESEAL, "in-1")
    out = driver.feed(stream, NOW)
    tail = driver.reset()
    errors = len(out.errors) + (tail is not None)
    others = [s for i, (s, _) in enumerate(items) if i != idx]
    got = [r.seal_id for r in out.reads]
    # The neighbours all arrive, in order; the corrupted frame is at most one extra read.
    it = iter(got)
    assert all(s in it for s in others)
    assert len(got) <= len(others) + 1
    if len(got) == len(others):
        assert errors >= 1, "a corrupted frame vanished without being counted"
