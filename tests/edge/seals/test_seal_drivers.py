"""Drivers: every field and status round-trips; doubtful input becomes a flagged read or an error."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from edge.config.seal_readers import BarcodeScannerConfig, ESealReaderConfig
from edge.domain.model import SealStatus, SealType
from edge.seals.drivers import DRIVERS, create_driver
from edge.seals.drivers.barcode import BarcodeDriver
from edge.seals.drivers.eseal import ESealDriver
from edge.seals.protocol import encode_frame
from simulators.seals import wire

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def eseal(**over: object) -> ESealDriver:
    cfg = ESealReaderConfig.model_validate({"type": "eseal", "name": "es-1", "port": "/dev/x", **over})
    driver = create_driver(cfg, "in-1")
    assert isinstance(driver, ESealDriver)
    return driver


def scanner(**over: object) -> BarcodeDriver:
    cfg = BarcodeScannerConfig.model_validate({"type": "barcode", "name": "bc-1", "port": "/dev/y", **over})
    driver = create_driver(cfg, "in-1")
    assert isinstance(driver, BarcodeDriver)
    return driver


def test_registry_maps_each_config_type_to_its_driver() -> None:
    assert {"eseal": ESealDriver, "barcode": BarcodeDriver} == DRIVERS
    assert set(DRIVERS) == {"eseal", "barcode"}


@pytest.mark.parametrize(("letter", "status"), [
    ("I", SealStatus.INTACT), ("O", SealStatus.OPENED), ("T", SealStatus.TAMPERED)])
def test_eseal_every_field_and_status_round_trips(letter: str, status: SealStatus) -> None:
    payload = wire.eseal_payload("ab cd-1234", letter, rdr="R7", mfr="TYCO", bat=5, ts="20261123T082501Z")
    out = eseal().feed(wire.eseal_frame(payload), NOW)
    assert out.errors == []
    [read] = out.reads
    assert read.lane == "in-1" and read.reader == "es-1"
    assert read.seal_id == "ABCD-1234"  # normalized: upper case, no spaces
    assert read.kind is SealType.ESEAL
    assert read.status is status
    assert read.manufacturer == "TYCO"
    assert read.battery == 5
    assert read.malformed is False and read.count == 1
    assert read.read_at == NOW
    assert read.raw == payload.decode()


def test_eseal_optional_fields_absent() -> None:
    [read] = eseal().feed(encode_frame(b"seal=ABCD1234;st=I;"), NOW).reads
    assert (read.manufacturer, read.battery, read.malformed) == (None, None, False)


@pytest.mark.parametrize("seal", ["AB", "", "ABC_123", "Ä1234", "-ABCD"])
def test_eseal_invalid_seal_id_is_kept_flagged(seal: str) -> None:
    payload = f"seal={seal};st=I;".encode("latin-1")
    out = eseal().feed(encode_frame(payload), NOW)
    if not payload.isascii():
        assert out.reads == [] and [e.kind.value for e in out.errors] == ["bad_payload"]
        return
    [read] = out.reads
    assert read.malformed is True and read.seal_id == seal.upper()


@pytest.mark.parametrize(("payload", "detail"), [
    (b"seal=ABCD1234;st=X;", "status 'X'"),
    (b"seal=ABCD1234;", "status None"),
    (b"seal=ABCD1234;st=I;bat=101;", "battery '101'"),
    (b"seal=ABCD1234;st=I;bat=-1;", "battery '-1'"),
    (b"seal=ABCD1234;st=I;ts=2026-11-23;", "timestamp"),
    (b"seal=ABCD1234;st=I;ts=20261399T250000Z;", "timestamp"),
])
def test_eseal_bad_field_keeps_a_malformed_read_and_counts(payload: bytes, detail: str) -> None:
    out = eseal().feed(encode_frame(payload), NOW)
    [read] = out.reads
    assert read.malformed is True and read.seal_id == "ABCD1234"
    [err] = out.errors
    assert err.kind.value == "bad_field" and detail in err.detail


def test_eseal_frame_without_seal_is_an_error_not_a_read() -> None:
    out = eseal().feed(encode_frame(b"rdr=R1;st=I;"), NOW)
    assert out.reads == [] and [e.kind.value for e in out.errors] == ["bad_payload"]


def test_eseal_unknown_fields_ignored_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    driver = eseal()
    frame = encode_frame(b"seal=ABCD1234;st=I;rssi=-61;fw=2.1;")
    with caplog.at_level(logging.INFO, logger="edge.seals"):
        first = driver.feed(frame + frame, NOW)
    assert [r.seal_id for r in first.reads] == ["ABCD1234", "ABCD1234"]
    assert first.errors == [] and not first.reads[0].malformed
    assert "rssi" in (first.reads[0].raw or "")
    logged = [r.getMessage() for r in caplog.records if "unknown field" in r.getMessage()]
    assert len(logged) == 2 and any("'rssi'" in m for m in logged) and any("'fw'" in m for m in logged)


def test_eseal_max_payload_is_configurable() -> None:
    long_payload = b"seal=ABCD1234;st=I;note=" + b"x" * 40 + b";"
    assert eseal(max_payload_bytes=32).feed(encode_frame(long_payload), NOW).reads == []
    assert len(eseal().feed(encode_frame(long_payload), NOW).reads) == 1


def test_barcode_crlf_lines_with_prefix_and_suffix() -> None:
    driver = scanner(strip_prefix="]C0", strip_suffix="#")
    out = driver.feed(b"]C0EU 1234567#\r\n]C0ABCD1234#\r\n", NOW)
    assert [r.seal_id for r in out.reads] == ["EU1234567", "ABCD1234"]
    read = out.reads[0]
    assert (read.kind, read.status, read.malformed, read.reader, read.raw) == (
        SealType.BOLT, SealStatus.UNKNOWN, False, "bc-1", "]C0EU 1234567#")
    assert out.errors == []


def test_barcode_missing_prefix_still_reads() -> None:
    out = scanner(strip_prefix="]C0").feed(b"ABCD1234\r\n", NOW)
    assert [r.seal_id for r in out.reads] == ["ABCD1234"]


@pytest.mark.parametrize("terminator", [b"\r\n", b"\r", b"\n"])
def test_barcode_any_line_end(terminator: bytes) -> None:
    out = scanner().feed(b"ABCD1234" + terminator + b"WXYZ9876" + terminator, NOW)
    assert [r.seal_id for r in out.reads] == ["ABCD1234", "WXYZ9876"]


def test_barcode_split_across_feeds_and_reset() -> None:
    driver = scanner()
    assert driver.feed(b"ABCD", NOW).reads == []
    assert driver.pending
    assert [r.seal_id for r in driver.feed(b"1234\r", NOW).reads] == ["ABCD1234"]
    assert driver.feed(b"\nPART", NOW).reads == []
    err = driver.reset()
    assert err is not None and err.kind.value == "truncated" and err.raw == b"PART"


def test_barcode_invalid_id_is_kept_flagged() -> None:
    [read] = scanner().feed(b"AB_12\r\n", NOW).reads
    assert read.malformed and read.seal_id == "AB_12"


def test_barcode_noise_and_long_lines_are_errors() -> None:
    driver = scanner(max_line_chars=16)
    out = driver.feed(b"\x00\xffAB\r\n" + b"X" * 20 + b"\r\nABCD1234\r\n", NOW)
    assert [e.kind.value for e in out.errors] == ["bad_payload", "too_long"]
    assert [r.seal_id for r in out.reads] == ["ABCD1234"]
    # An endless line is reported once and then skipped to its end.
    out = driver.feed(b"Y" * 40, NOW)
    assert [e.kind.value for e in out.errors] == ["too_long"]
    assert driver.feed(b"Y" * 40, NOW).errors == []
    assert [r.seal_id for r in driver.feed(b"YYY\r\nWXYZ9876\r\n", NOW).reads] == ["WXYZ9876"]


def test_barcode_blank_lines_ignored() -> None:
    out = scanner(strip_prefix="]C0").feed(b"\r\n\r\n   \r\n]C0\r\n", NOW)
    assert out.reads == [] and out.errors == []
