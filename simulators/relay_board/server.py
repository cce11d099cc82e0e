"""The simulated board on a pseudo-terminal, speaking Modbus RTU through pymodbus' framer.

Frames are cut, CRC-checked and decoded with pymodbus' ``FramerRTU`` and server-side
``DecodePDU``, and answered with pymodbus' own response PDUs, so the bytes on the pty are what
a real board sends. The request loop is ours rather than ``ModbusSerialServer`` because the
simulator must own the pty master (pymodbus' server can only open a named port) and must be
able to misbehave on the wire: stay silent, corrupt the CRC, spray garbage, lose power.

The simulator also paces requests and answers at the configured baud rate (10 bits per
byte): a request takes effect only after its wire time, and an answer is written after its
own, so latency measured through the pty includes what the wire would add.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import threading
import time
import tty
from pathlib import Path
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsResponse,
    ReadDiscreteInputsResponse,
    WriteMultipleCoilsResponse,
    WriteSingleCoilResponse,
)

from simulators.relay_board.model import BoardModel

logger = logging.getLogger(__name__)

TICK_S = 0.005
#: how late a ``late_answers`` answer comes: past gate-controller's default 0.3 s timeout
LATE_ANSWER_S = 0.4


class RelayBoardServer:
    """Runs a BoardModel in real time behind a Modbus RTU slave on a fresh pty.

    Thread-safe: the control API calls ``with server.lock:`` around model changes.
    """

    def __init__(
        self,
        model: BoardModel,
        *,
        slave_id: int = 1,
        baudrate: int = 115200,
        link: Path | None = None,
        seed: int | None = None,
    ) -> None:
        self.model = model
        self.slave_id = slave_id
        self.baudrate = baudrate
        self.lock = threading.RLock()
        self.requests = 0
        self.bad_frames = 0
        self.garbled = 0  # answers sent with a corrupted CRC or noise in front
        self.late = 0  # answers sent after LATE_ANSWER_S (the master has timed out by then)
        self.sprayed = 0  # unsolicited noise bytes written
        self._rng = random.Random(seed)
        self._framer = FramerRTU(DecodePDU(is_server=True))
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.pty_path = os.ttyname(self._slave)
        self.link = link
        if link is not None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(self.pty_path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay-board-sim", daemon=True)

    @property
    def port(self) -> str:
        """What the master should open: the udev-like symlink if one was asked for."""
        return str(self.link) if self.link is not None else self.pty_path

    def start(self) -> RelayBoardServer:
        """Start the real-time loop; returns self for chaining."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop and close both ends of the pty (idempotent)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()

    def __enter__(self) -> RelayBoardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        buffer = b""
        last = time.monotonic()
        last_byte = last
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], TICK_S)
            except (OSError, ValueError):
                return
            now = time.monotonic()
            with self.lock:
                self.model.advance(now - last)
            last = now
            if not ready:
                if buffer and now - last_byte > 0.05:
                    # an RTU frame ends with 3.5 chars of silence: drop an unfinished fragment
                    self.bad_frames += 1
                    buffer = b""
                continue
            try:
                chunk = os.read(self._master, 512)
            except OSError:
                return
            last_byte = now
            buffer += chunk
            buffer = self._handle(buffer)

    def _handle(self, buffer: bytes) -> bytes:
        while buffer:
            try:
                used, pdu = self._framer.handleFrame(buffer, 0, 0)
            except (ModbusException, ValueError, IndexError, KeyError):
                self.bad_frames += 1
                return b""
            if pdu is None:
                if used:
                    self.bad_frames += 1  # CRC failed or garbage: the framer skipped it
                return buffer[used:]
            # the pty delivers a request at once; a real line needs 10 bits per byte first
            time.sleep(used * 10 / self.baudrate)
            buffer = buffer[used:]
            if pdu.dev_id != self.slave_id:
                continue  # a frame for another board on the bus
            self.requests += 1
            with self.lock:
                if not self.model.responding:
                    continue
                response = self._execute(pdu)
                corrupt = self._strikes("crc_errors")
                garbage = self._strikes("garbage")
                late = self._strikes("late_answers")
            frame = self._framer.buildFrame(response)
            if corrupt:
                frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
            if garbage:
                frame = bytes(self._rng.randrange(256) for _ in range(7)) + frame
            self.garbled += corrupt or garbage
            if late:
                # a board busy elsewhere answers after the master gave up: the master's retry
                # is already on the line and this answer will be taken for it
                self.late += 1
                time.sleep(LATE_ANSWER_S)
            time.sleep(len(frame) * 10 / self.baudrate)
            try:
                os.write(self._master, frame)
            except OSError:
                return b""
        return buffer

    def _strikes(self, fault: str) -> bool:
        """Whether a line fault hits this answer: ``True`` always, a float is a probability."""
        level = self.model.faults.get(fault)
        if level is None or level is False:
            return False
        if level is True:
            return True
        return self._rng.random() < float(level)

    def spray(self, n_bytes: int = 32) -> None:
        """Write unsolicited random bytes to the line (noise, a babbling device on the bus)."""
        noise = bytes(self._rng.randrange(256) for _ in range(n_bytes))
        self.sprayed += os.write(self._master, noise)

    def _execute(self, pdu: ModbusPDU) -> ModbusPDU:
        model = self.model
        fc = pdu.function_code
        dev, tid = pdu.dev_id, pdu.transaction_id
        if fc in (1, 2):
            image = model.coils if fc == 1 else model.discrete_inputs()
            if pdu.address + pdu.count > len(image):
                return ExceptionResponse(fc, ExcCodes.ILLEGAL_ADDRESS, device_id=pdu.dev_id)
            bits = list(image[pdu.address : pdu.address + pdu.count])
            cls = ReadCoilsResponse if fc == 1 else ReadDiscreteInputsResponse
            return cls(bits=bits, dev_id=dev, transaction_id=tid)
        if fc == 5:
            value = bool(pdu.bits[0])
            if not model.write_coil(pdu.address, value):
                return ExceptionResponse(fc, ExcCodes.ILLEGAL_ADDRESS, device_id=pdu.dev_id)
            return WriteSingleCoilResponse(address=pdu.address, bits=[value], dev_id=dev,
                                          transaction_id=tid)
        if fc == 15:
            for i, bit in enumerate(pdu.bits[: pdu.count]):
                if not model.write_coil(pdu.address + i, bool(bit)):
                    return ExceptionResponse(fc, ExcCodes.ILLEGAL_ADDRESS, device_id=pdu.dev_id)
            return WriteMultipleCoilsResponse(address=pdu.address, count=pdu.count, dev_id=dev,
                                              transaction_id=tid)
        return ExceptionResponse(fc, ExcCodes.ILLEGAL_FUNCTION, device_id=pdu.dev_id)

    # ------------------------------------------------------------------ control API
    def add_vehicle(self, **kwargs: Any) -> int:
        """Queue a vehicle (see BoardModel.add_vehicle); returns its id."""
        with self.lock:
            return self.model.add_vehicle(**kwargs).id

    def inject(self, fault: str, target: Any = True) -> None:
        """Switch a fault on (BoardModel.inject)."""
        with self.lock:
            self.model.inject(fault, target)

    def clear(self, fault: str | None = None) -> None:
        """Clear one fault or all."""
        with self.lock:
            self.model.clear(fault)

    def snapshot(self) -> dict[str, Any]:
        """Model state plus wire counters."""
        with self.lock:
            snap = self.model.snapshot()
        snap.update({"pty": self.pty_path, "port": self.port, "requests": self.requests,
                     "bad_frames": self.bad_frames, "garbled": self.garbled,
                     "late": self.late,
                     "sprayed": self.sprayed})
        return snap

    def wait_for(self, predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> bool:
        """Poll ``predicate(snapshot)`` until true or timeout; for tests and scenarios."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(interval)
        return False
