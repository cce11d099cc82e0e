"""The serial runtime against the simulators on real pseudo-terminals (no mocks)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from edge.config.lanes import LaneConfig
from edge.config.seal_readers import BarcodeScannerConfig, ESealReaderConfig
from edge.domain.model import SealRead, SealStatus, SealType
from edge.seals import AlarmKind, ReaderAlarm, SealReaderService, SerialSealReader
from simulators.seals import BarcodeScannerSimulator, ESealReaderSimulator

FAST = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.2, "alarm_after_s": 0.3, "frame_timeout_s": 0.2}


def eseal_cfg(port: str, **over: Any) -> ESealReaderConfig:
    return ESealReaderConfig.model_validate({"type": "eseal", "name": "es-1", "port": port, **FAST, **over})


class Collector:
    """Runs a reader and collects what it delivers on the event loop."""

    def __init__(self) -> None:
        self.reads: asyncio.Queue[SealRead] = asyncio.Queue()
        self.alarms: list[ReaderAlarm] = []

    def on_read(self, read: SealRead) -> None:
        self.reads.put_nowait(read)

    def on_alarm(self, alarm: ReaderAlarm) -> None:
        self.alarms.append(alarm)

    async def next(self, timeout: float = 3.0) -> SealRead:
        return await asyncio.wait_for(self.reads.get(), timeout)

    def alarm_states(self, kind: AlarmKind) -> list[bool]:
        return [a.active for a in self.alarms if a.kind is kind]


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


async def started(cfg: ESealReaderConfig | BarcodeScannerConfig, col: Collector) -> SerialSealReader:
    reader = SerialSealReader(cfg, "in-1", col.on_read, col.on_alarm)
    await reader.start()
    return reader


def test_eseal_reads_arrive_through_the_pty(eseal_sim: ESealReaderSimulator) -> None:
    async def scenario() -> None:
        col = Collector()
        reader = await started(eseal_cfg(eseal_sim.path), col)
        try:
            await until(lambda: reader.stats.connected)
            eseal_sim.read("ABCD1234", "I", bat=77)
            eseal_sim.read("WXYZ9876", "T", mfr="TYCO")
            first, second = await col.next(), await col.next()
            assert (first.seal_id, first.status, first.battery, first.kind, first.reader, first.lane) == (
                "ABCD1234", SealStatus.INTACT, 77, SealType.ESEAL, "es-1", "in-1")
            assert (second.seal_id, second.status, second.manufacturer) == (
                "WXYZ9876", SealStatus.TAMPERED, "TYCO")
            eseal_sim.read("AB_1", "O")  # fails seal-id validation: kept, flagged
            bad = await col.next()
            assert bad.malformed and bad.seal_id == "AB_1" and bad.status is SealStatus.OPENED
            eseal_sim.burst(200)
            burst = [await col.next() for _ in range(200)]
            assert [r.seal_id for r in burst] == [f"BURST{i:05d}" for i in range(1, 201)]
            assert reader.stats.reads == 203 and reader.stats.error_total == 0
        finally:
            await reader.stop()

    run(scenario)


def test_garbage_is_counted_logged_rate_limited_with_hex(
        eseal_sim: ESealReaderSimulator, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        col = Collector()
        reader = await started(eseal_cfg(eseal_sim.path, log_every_s=60), col)
        try:
            await until(lambda: reader.stats.connected)
            bad_frames = [eseal_sim.badcrc(f"BAD{i:05d}") for i in range(5)]
            eseal_sim.noise(30)
            eseal_sim.truncate("CUT00001")
            eseal_sim.read("GOOD0001")
            good = await col.next()
            assert good.seal_id == "GOOD0001"
            await until(lambda: reader.stats.errors["bad_crc"] == 5)
            assert reader.stats.errors["noise"] >= 1
            assert reader.stats.errors["truncated"] == 1
            return_frames.extend(bad_frames)
        finally:
            await reader.stop()

    return_frames: list[bytes] = []
    with caplog.at_level(logging.DEBUG, logger="edge.seals"):
        run(scenario)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "bad_crc" in r.getMessage()]
    assert len(warnings) == 1  # four more suppressed within log_every_s
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG
             and r.getMessage().startswith("bad_crc frame")]
    assert len(debug) == 5
    for frame, line in zip(return_frames, debug, strict=True):
        assert frame.hex(" ") in line
    assert all(getattr(r, "device", None) == "es-1" for r in warnings)


def test_unfinished_frame_times_out_as_truncated(eseal_sim: ESealReaderSimulator) -> None:
    async def scenario() -> None:
        col = Collector()
        reader = await started(eseal_cfg(eseal_sim.path, frame_timeout_s=0.2), col)
        try:
            await until(lambda: reader.stats.connected)
            eseal_sim.truncate("CUT00001")
            await until(lambda: reader.stats.errors["truncated"] == 1, timeout=2)
            eseal_sim.read("GOOD0001")
            assert (await col.next()).seal_id == "GOOD0001"
        finally:
            await reader.stop()

    run(scenario)


def test_unplug_and_replug_while_reading(eseal_sim: ESealReaderSimulator) -> None:
    async def scenario() -> None:
        col = Collector()
        reader = await started(eseal_cfg(eseal_sim.path), col)
        try:
            await until(lambda: reader.stats.connected)
            eseal_sim.read("BEFORE01")
            assert (await col.next()).seal_id == "BEFORE01"
            eseal_sim.port.write(b"\x02seal=HALF")  # mid-frame when the cable goes
            await asyncio.sleep(0.05)
            eseal_sim.unplug()
            await until(lambda: col.alarm_states(AlarmKind.DISCONNECTED) == [True])
            assert not reader.stats.connected and reader.stats.disconnects == 1
            assert col.alarms[0].reader == "es-1" and col.alarms[0].lane == "in-1"
            eseal_sim.replug()
            await until(lambda: col.alarm_states(AlarmKind.DISCONNECTED) == [True, False])
            await until(lambda: reader.stats.connected)
            eseal_sim.read("AFTER001", "T")
            after = await col.next()
            assert (after.seal_id, after.status) == ("AFTER001", SealStatus.TAMPERED)
            assert reader.stats.connects == 2
            assert reader.stats.errors["truncated"] == 1  # the half frame, not lost silently
        finally:
            await reader.stop()

    run(scenario)


def test_short_blip_reconnects_without_alarm(eseal_sim: ESealReaderSimulator) -> None:
    async def scenario() -> None:
        col = Collector()
        reader = await started(eseal_cfg(eseal_sim.path, alarm_after_s=3.0), col)
        try:
            await until(lambda: reader.stats.connected)
            eseal_sim.unplug()
            await asyncio.sleep(0.1)
            eseal_sim.replug()
            await until(lambda: reader.stats.connects == 2)
            eseal_sim.read("BLIP0001")
            assert (await col.next()).seal_id == "BLIP0001"
            assert reader.stats.disconnects == 1
            assert col.alarms == []
        finally:
            await reader.stop()

    run(scenario)


def test_device_absent_at_start_then_plugged(tmp_path: Path) -> None:
    sim = ESealReaderSimulator(tmp_path / "late")

    async def scenario() -> None:
        col = Collector()
        reader = await started(eseal_cfg(sim.path), col)
        try:
            await until(lambda: col.alarm_states(AlarmKind.DISCONNECTED) == [True])
            sim.start()
            await until(lambda: reader.stats.connected)
            assert col.alarm_states(AlarmKind.DISCONNECTED) == [True, False]
            sim.read("LATE0001")
            assert (await col.next()).seal_id == "LATE0001"
        finally:
            await reader.stop()

    try:
        run(scenario)
    finally:
        sim.close()


def test_error_rate_alarm_raised_and_cleared(eseal_sim: ESealReaderSimulator) -> None:
    async def scenario() -> None:
        col = Collector()
        cfg = eseal_cfg(eseal_sim.path, error_alarm_threshold=3, error_window_s=1.5)
        reader = await started(cfg, col)
        try:
            await until(lambda: reader.stats.connected)
            eseal_sim.badcrc()
            eseal_sim.badcrc()
            await until(lambda: reader.stats.errors["bad_crc"] == 2)
            assert col.alarm_states(AlarmKind.ERRORS) == []
            eseal_sim.badcrc()
            await until(lambda: col.alarm_states(AlarmKind.ERRORS) == [True])
            await until(lambda: col.alarm_states(AlarmKind.ERRORS) == [True, False], timeout=6)
        finally:
            await reader.stop()

    run(scenario)


def test_barcode_scanner_through_the_pty(barcode_sim: BarcodeScannerSimulator) -> None:
    async def scenario() -> None:
        col = Collector()
        cfg = BarcodeScannerConfig.model_validate(
            {"type": "barcode", "name": "bc-1", "port": barcode_sim.path, "strip_prefix": "]C0", **FAST})
        reader = await started(cfg, col)
        try:
            await until(lambda: reader.stats.connected)
            barcode_sim.read("EU 1234567")
            barcode_sim.noise(12)
            barcode_sim.read("x!")
            first, second = await col.next(), await col.next()
            assert (first.seal_id, first.kind, first.status, first.malformed) == (
                "EU1234567", SealType.BOLT, SealStatus.UNKNOWN, False)
            assert second.malformed and second.seal_id == "X!"
            await until(lambda: reader.stats.errors["bad_payload"] == 1)
            barcode_sim.unplug()
            barcode_sim.replug()
            await until(lambda: reader.stats.connects == 2)
            barcode_sim.read("ABCD1234")
            assert (await col.next()).seal_id == "ABCD1234"
        finally:
            await reader.stop()

    run(scenario)


def test_service_collapses_reads_into_the_lane_window(
        eseal_sim: ESealReaderSimulator, barcode_sim: BarcodeScannerSimulator) -> None:
    async def scenario() -> None:
        readers: list[ESealReaderConfig | BarcodeScannerConfig] = [
                   eseal_cfg(eseal_sim.path, window_s=30),
                   BarcodeScannerConfig.model_validate({"type": "barcode", "name": "bc-1",
                                                        "port": barcode_sim.path, **FAST}),
                   eseal_cfg("/nonexistent/port", name="spare")]
        lanes = [LaneConfig(id="in-1", direction="inbound", seal_readers=["es-1", "bc-1"])]
        alarms: list[ReaderAlarm] = []
        forwarded: list[SealRead] = []
        service = SealReaderService(readers, lanes, on_alarm=alarms.append, on_read=forwarded.append)
        assert [r.name for r in service.readers] == ["es-1", "bc-1"]  # 'spare' has no lane
        await service.start()
        try:
            await until(lambda: all(r.stats.connected for r in service.readers))
            for _ in range(4):
                eseal_sim.read("ABCD1234", "I")
            eseal_sim.read("ABCD1234", "T")
            barcode_sim.read("BOLT0001")  # the simulator adds its "]C0" prefix
            window = service.windows["in-1"]
            await until(lambda: sum(r.count for r in window.current()) == 6)
            by_id = {r.seal_id: r for r in window.current()}
            assert by_id["ABCD1234"].count == 5 and by_id["ABCD1234"].status is SealStatus.TAMPERED
            assert by_id["]C0BOLT0001"].count == 1  # no prefix configured: kept, flagged
            assert by_id["]C0BOLT0001"].malformed
            # The assembly hook got every sighting as it came.
            assert [r.count for r in forwarded] == [1] * 6
            assert [r.status for r in forwarded if r.seal_id == "ABCD1234"][-1] is SealStatus.TAMPERED
        finally:
            await service.stop()
        assert alarms == []

    run(scenario)


def test_a_driver_bug_does_not_stop_the_reader(eseal_sim: ESealReaderSimulator,
                                               caplog: pytest.LogCaptureFixture) -> None:
    # The only stand-in in this file: a driver with a deliberate bug, since the real drivers
    # have none we could trigger (the fuzz tests say so).
    from datetime import datetime

    from edge.seals.drivers.base import Decoded
    from edge.seals.drivers.eseal import ESealDriver

    class Buggy(ESealDriver):
        def feed(self, data: bytes, now: datetime) -> Decoded:
            if b"BOOM" in data:
                raise ZeroDivisionError("driver bug")
            return super().feed(data, now)

    async def scenario() -> None:
        col = Collector()
        cfg = eseal_cfg(eseal_sim.path)
        reader = SerialSealReader(cfg, "in-1", col.on_read, col.on_alarm)
        reader._driver = Buggy(cfg, "in-1")
        await reader.start()
        try:
            await until(lambda: reader.stats.connected)
            eseal_sim.read("BOOM0001")
            await until(lambda: reader.stats.errors["internal"] == 1)
            await until(lambda: reader.stats.connected and reader.stats.connects == 2)
            eseal_sim.read("FINE0001")
            assert (await col.next()).seal_id == "FINE0001"
        finally:
            await reader.stop()

    with caplog.at_level(logging.ERROR, logger="edge.seals"):
        run(scenario)
    assert any("failed unexpectedly" in r.getMessage() and r.exc_info for r in caplog.records)


def test_fuzzed_stream_through_a_real_pty(eseal_sim: ESealReaderSimulator) -> None:
    """Noise and valid frames through the real pty and runtime: every frame exactly once."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from simulators.seals import wire

    async def deliver(stream: bytes, expected: int) -> tuple[list[str], SerialSealReader]:
        col = Collector()
        reader = await started(eseal_cfg(eseal_sim.path, frame_timeout_s=0.5), col)
        try:
            await until(lambda: reader.stats.connected)
            eseal_sim.raw(stream)
            seals = [(await col.next(5)).seal_id for _ in range(expected)]
            await asyncio.sleep(0.05)  # nothing more may arrive
            assert col.reads.empty()
            return seals, reader
        finally:
            await reader.stop()

    frames = st.builds(lambda i, status: (f"FZ{i:06d}", wire.eseal_frame(
        wire.eseal_payload(f"FZ{i:06d}", status, rdr="R1", bat=i % 101))),
        st.integers(0, 999_999), st.sampled_from("IOT"))

    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.binary(max_size=60), frames), min_size=1, max_size=15),
           st.binary(max_size=60))
    def check(parts: list[tuple[bytes, tuple[str, bytes]]], tail: bytes) -> None:
        stream = b"".join(noise + frame for noise, (_, frame) in parts) + tail
        seals, reader = asyncio.run(deliver(stream, len(parts)))
        assert seals == [seal for _, (seal, _) in parts]
        assert reader.stats.errors["internal"] == 0

    check()


def test_prometheus_metrics_follow_the_reader(eseal_sim: ESealReaderSimulator) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from edge.seals.metrics import SealReaderCollector

    async def scenario() -> bytes:
        col = Collector()
        reader = await started(eseal_cfg(eseal_sim.path), col)
        registry = CollectorRegistry()
        registry.register(SealReaderCollector(lambda: [reader]))
        try:
            await until(lambda: reader.stats.connected)
            eseal_sim.read("ABCD1234")
            eseal_sim.badcrc()
            eseal_sim.badcrc()
            await col.next()
            await until(lambda: reader.stats.errors["bad_crc"] == 2)
            return generate_latest(registry)
        finally:
            await reader.stop()

    text = asyncio.run(scenario()).decode()
    assert 'gate_seal_reader_reads_total{lane="in-1",reader="es-1"} 1.0' in text
    assert 'gate_seal_reader_errors_total{kind="bad_crc",lane="in-1",reader="es-1"} 2.0' in text
    assert 'gate_seal_reader_connected{lane="in-1",reader="es-1"} 1.0' in text
    assert ('gate_seal_reader_alarm{alarm="SEAL_READER_DISCONNECTED",lane="in-1",reader="es-1"} 0.0'
            in text)
