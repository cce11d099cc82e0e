"""gate-sim seal-reader / barcode-scanner as processes on real ptys, driven by their commands."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import serial

from edge.config.seal_readers import BarcodeScannerConfig, ESealReaderConfig
from edge.domain.model import SealStatus
from edge.seals.drivers import create_driver
from edge.seals.protocol import encode_frame
from simulators.seals import ESealReaderSimulator, PtyPort

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class SimProcess:
    def __init__(self, args: list[str], stdin_open: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulators.cli", *args], cwd=REPO, text=True,
            stdin=subprocess.PIPE if stdin_open else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.path = self.proc.stdout.readline().strip()
        assert self.path, self.proc.stderr.read() if self.proc.stderr else "no output"

    def cmd(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(5)
        finally:
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def procs() -> Iterator[list[SimProcess]]:
    started: list[SimProcess] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
        p.stop()


def read_exactly(port: serial.Serial, n: int) -> bytes:
    data = port.read(n)
    assert len(data) == n, f"got {len(data)} of {n} bytes"
    return data


def test_seal_reader_cli_reads_and_faults(tmp_path: Path, procs: list[SimProcess]) -> None:
    link = tmp_path / "seal-1"
    sim = SimProcess(["seal-reader", "--link", str(link), "--reader-id", "R5", "--mfr", "TYCO",
                      "--seed", "1"])
    procs.append(sim)
    assert sim.path == str(link) and link.is_symlink() and os.readlink(link).startswith("/dev/pts/")
    driver = create_driver(ESealReaderConfig(type="eseal", name="es-1", port=sim.path), "in-1")
    with serial.Serial(sim.path, timeout=2) as port:
        expected = encode_frame(b"rdr=R5;seal=ABCD1234;mfr=TYCO;st=T;bat=40;")
        assert sim.cmd("read ABCD1234 T bat=40") == f"ok sent {len(expected)} bytes"
        assert read_exactly(port, len(expected)) == expected
        [read] = driver.feed(expected, NOW).reads
        assert (read.seal_id, read.status, read.battery, read.manufacturer) == (
            "ABCD1234", SealStatus.TAMPERED, 40, "TYCO")
        for command, kind in [("badcrc", "bad_crc"), ("noise 25", "noise")]:
            answer = sim.cmd(command)
            n = int(answer.split()[2])
            out = driver.feed(read_exactly(port, n), NOW)
            assert out.reads == [] and [e.kind.value for e in out.errors] == [kind]
        answer = sim.cmd("truncate")
        out = driver.feed(read_exactly(port, int(answer.split()[2])), NOW)
        assert out.reads == [] and driver.pending
        answer = sim.cmd("burst 3 LOT")
        out = driver.feed(read_exactly(port, int(answer.split()[2])), NOW)
        assert [r.seal_id for r in out.reads] == ["LOT00001", "LOT00002", "LOT00003"]
        assert [e.kind.value for e in out.errors] == ["truncated"]
        assert sim.cmd("raw 41 42") == "ok sent 2 bytes" and read_exactly(port, 2) == b"AB"
    assert sim.cmd("status").startswith(f"ok port={link} pty=/dev/pts/")
    assert sim.cmd("frobnicate").startswith("error: unknown command 'frobnicate'")
    assert sim.cmd("noise lots").startswith("error: usage: noise N")
    assert sim.cmd("raw zz").startswith("error: raw takes hex bytes")
    assert sim.cmd("read").startswith("error: read needs a seal id")
    assert sim.cmd("quit") == "ok bye"
    # 'quit' ends the process by itself (a SIGTERM from stop() would race its own exit).
    assert sim.proc.wait(20) == 0
    sim.stop()
    assert not link.exists()


def test_unplug_and_replug_keep_the_stable_path(tmp_path: Path, procs: list[SimProcess]) -> None:
    link = tmp_path / "seal-2"
    sim = SimProcess(["seal-reader", "--link", str(link)])
    procs.append(sim)
    port = serial.Serial(sim.path, timeout=1)
    try:
        assert sim.cmd("unplug") == "ok unplugged"
        assert not link.exists()
        with pytest.raises(serial.SerialException):
            port.read(1)
        with pytest.raises(serial.SerialException):
            serial.Serial(sim.path, timeout=1)
        assert sim.cmd("read GONE0001").startswith("ok sent")  # into the void, like a real UART
        status = dict(kv.split("=", 1) for kv in sim.cmd("status").split()[1:])
        assert status["plugged"] == "False" and status["pty"] == "None"
        assert int(status["bytes_dropped"]) == len(encode_frame(b"rdr=R1;seal=GONE0001;mfr=ACME;st=I;"))
        assert sim.cmd("replug").startswith("ok plugged /dev/pts/")
    finally:
        port.close()
    with serial.Serial(sim.path, timeout=2) as port:
        frame = encode_frame(b"rdr=R1;seal=BACK0001;mfr=ACME;st=I;")
        sim.cmd("read BACK0001")
        assert read_exactly(port, len(frame)) == frame


def test_barcode_scanner_over_the_control_socket(tmp_path: Path, procs: list[SimProcess]) -> None:
    link, ctl = tmp_path / "scan-1", tmp_path / "scan-1.ctl"
    sim = SimProcess(["barcode-scanner", "--link", str(link), "--control", str(ctl), "--prefix", "]C0"],
                     stdin_open=False)
    procs.append(sim)
    deadline = time.monotonic() + 5
    while not ctl.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    cfg = BarcodeScannerConfig(type="barcode", name="bc-1", port=sim.path, strip_prefix="]C0")
    driver = create_driver(cfg, "in-1")
    with serial.Serial(sim.path, timeout=2) as port, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(ctl))
        stream = client.makefile("rw")

        def cmd(line: str) -> str:
            stream.write(line + "\n")
            stream.flush()
            return stream.readline().strip()

        assert cmd("read EU 1234567") == "ok sent 15 bytes"
        line = read_exactly(port, 15)
        assert line == b"]C0EU 1234567\r\n"
        assert [r.seal_id for r in driver.feed(line, NOW).reads] == ["EU1234567"]
        n = int(cmd("noise 10").split()[2])
        out = driver.feed(read_exactly(port, n), NOW)
        assert out.reads == [] and [e.kind.value for e in out.errors] == ["bad_payload"]
        assert cmd("badcrc").startswith("error: a barcode scanner has no CRC")
    # stdin is closed, yet the control socket keeps the simulator alive until SIGTERM.
    assert sim.proc.poll() is None
    assert sim.stop() == 0
    assert not link.exists() and not ctl.exists()


def test_python_api_unplugged_writes_are_dropped(tmp_path: Path) -> None:
    with PtyPort(tmp_path / "p") as port:
        port.unplug()
        assert port.write(b"abc") == 0 and port.bytes_dropped == 3
        port.replug()
        assert port.plugged and Path(port.path).is_symlink()
    with ESealReaderSimulator() as sim:  # default: a private temporary link
        own = Path(sim.path)
        assert own.is_symlink()
    assert not own.exists() and not own.parent.exists()
