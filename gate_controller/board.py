"""Modbus RTU driver of one relay/IO board (pymodbus sync client over pyserial).

The driver is synchronous on purpose: it runs only on the controller's own control thread
(see ``gate_controller.runtime``), so blocking serial I/O never touches the asyncio loop that
serves IPC. Conventions follow Home Assistant's modbus integration: one lock per serial bus, a
minimum silence between frames on RS-485, every coil write read back (Modbus application
protocol v1.1b3 §6.1 FC01 after §6.5 FC05) with a mismatch raised as an alarm, and the first
failure logged at ERROR then DEBUG until the line recovers. The last frames are kept in a ring
and hex-dumped at DEBUG when something goes wrong.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Any, ClassVar, Protocol

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException

from gate_controller.config import RelayBoardConfig
from gate_controller.lane import FaultCode, Inputs, Outputs

logger = logging.getLogger(__name__)

_BUS_LOCKS: dict[str, threading.Lock] = {}
_BUS_LOCKS_GUARD = threading.Lock()


def bus_lock(port: str) -> threading.Lock:
    """The one lock of the serial bus at ``port``, shared by every board on that bus."""
    with _BUS_LOCKS_GUARD:
        return _BUS_LOCKS.setdefault(port, threading.Lock())


class _RepeatFilter(logging.Filter):
    """Demote pymodbus' own per-request errors to DEBUG while a board is known to be failing.

    Our driver logs the first failure at ERROR and repeats at DEBUG (one line a second per dead
    board is noise an operator learns to ignore); pymodbus logs every lost request at ERROR.
    """

    failing: ClassVar[set[str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.failing and record.levelno >= logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger("pymodbus.logging").isEnabledFor(logging.DEBUG)
        return True


logging.getLogger("pymodbus.logging").addFilter(_RepeatFilter())


class BoardError(Exception):
    """The board could not be used; ``code`` says which lane fault it becomes."""

    code = FaultCode.SERIAL_LOST


class ReadbackMismatch(BoardError):
    """A coil read back (FC01) differs from what was just written."""

    code = FaultCode.READBACK_MISMATCH


class BoardIO(Protocol):
    """What the controller needs from a board; the Modbus driver and the test model both fit."""

    def read_inputs(self) -> Inputs:
        """Read the five discrete inputs (FC02)."""
        ...

    def read_outputs(self) -> Outputs:
        """Read the five coils (FC01)."""
        ...

    def write_outputs(self, desired: Outputs, current: Outputs | None) -> None:
        """Write the coils that differ, safest first, and verify them by reading back."""
        ...

    def close(self) -> None:
        """Release the port."""
        ...


COIL_FIELDS = ("barrier_open", "barrier_close", "green_light", "red_light", "buzzer")
INPUT_FIELDS = ("entry_loop", "exit_loop", "photocell", "arm_up", "arm_down")
#: Inputs field -> InputMap field (the config names the limit switches explicitly)
INPUT_MAP_FIELD = {"entry_loop": "entry_loop", "exit_loop": "exit_loop", "photocell": "photocell",
                   "arm_up": "arm_up_limit", "arm_down": "arm_down_limit"}
#: the function code each driver call expects back (Modbus application protocol v1.1b3 §6)
EXPECTED_FC = {"read_coils": 1, "read_discrete_inputs": 2, "write_coil": 5, "write_coils": 15}
#: answers to an earlier request discarded in a row before the call gives up
STALE_RETRIES = 2


def write_order(desired: Outputs, current: Outputs | None) -> list[tuple[str, bool]]:
    """Coils to write, in an order that never energises both motor directions at once.

    Switching off comes before switching on, so the open and close coils are never on together
    even for the few milliseconds between two frames.
    """
    changes = [
        (name, getattr(desired, name))
        for name in COIL_FIELDS
        if current is None or getattr(current, name) != getattr(desired, name)
    ]
    return sorted(changes, key=lambda item: item[1])  # False (off) first


def write_phases(desired: Outputs, current: Outputs | None) -> list[Outputs]:
    """Split a write so a motor coil is energised only after the other one is verified off.

    A welded relay is found by the read-back of the first phase (both motor coils off), before
    the opposite direction is ever switched on; the common case costs one extra write and
    read-back, only when the motor direction changes.
    """
    rising_open = desired.barrier_open and (current is None or not current.barrier_open)
    rising_close = desired.barrier_close and (current is None or not current.barrier_close)
    if not (rising_open or rising_close):
        return [desired]
    other_may_be_on = current is None or (
        current.barrier_close if rising_open else current.barrier_open
    )
    if not other_may_be_on:
        return [desired]
    return [replace(desired, barrier_open=False, barrier_close=False), desired]


class ModbusRelayBoard:
    """A relay board at ``config.port``; every call may raise BoardError."""

    def __init__(self, config: RelayBoardConfig) -> None:
        self.config = config
        self.frames: deque[tuple[float, str, bytes]] = deque(maxlen=16)
        self.errors = 0
        self.stale = 0
        self._failing = False
        self._lock = bus_lock(config.port)
        self._last_frame_end = 0.0
        self._gap = config.inter_frame_gap_ms / 1000.0
        self._client = ModbusSerialClient(
            config.port,
            baudrate=config.baudrate,
            bytesize=8,
            parity=config.parity,
            stopbits=config.stopbits,
            timeout=config.timeout_s,
            retries=config.retries,
            name=f"board-{config.name}",
            trace_packet=self._trace,
        )
        coil_addrs = [getattr(config.coils, f) for f in COIL_FIELDS]
        input_addrs = [getattr(config.inputs, INPUT_MAP_FIELD[f]) for f in INPUT_FIELDS]
        self._coil_base, self._coil_count = min(coil_addrs), max(coil_addrs) - min(coil_addrs) + 1
        self._in_base, self._in_count = min(input_addrs), max(input_addrs) - min(input_addrs) + 1

    # ------------------------------------------------------------------ BoardIO
    def read_inputs(self) -> Inputs:
        """FC02 over the span of the configured inputs."""
        bits = self._call("read_discrete_inputs", self._in_base, count=self._in_count)
        m = self.config.inputs
        return Inputs(**{
            f: bool(bits[getattr(m, INPUT_MAP_FIELD[f]) - self._in_base]) for f in INPUT_FIELDS
        })

    def read_outputs(self) -> Outputs:
        """FC01 over the span of the configured coils."""
        bits = self._call("read_coils", self._coil_base, count=self._coil_count)
        m = self.config.coils
        return Outputs(**{f: bool(bits[getattr(m, f) - self._coil_base]) for f in COIL_FIELDS})

    def write_outputs(self, desired: Outputs, current: Outputs | None) -> None:
        """Write in motor-safe phases (write_phases), each verified by reading back."""
        for phase in write_phases(desired, current):
            self._write_verified(phase, current)
            current = phase

    def _write_verified(self, desired: Outputs, current: Outputs | None) -> None:
        """Write the changed coils, then one FC01 read-back of all coils.

        When the five coils are contiguous (the default map) one FC15 frame sets them all, so
        the board switches both motor directions in the same instant; otherwise one FC05 per
        changed coil, switching off before switching on.
        """
        changes = write_order(desired, current)
        if not changes:
            return
        if self._coil_count == len(COIL_FIELDS):
            values = [False] * self._coil_count
            for name in COIL_FIELDS:
                values[getattr(self.config.coils, name) - self._coil_base] = getattr(desired, name)
            self._call("write_coils", self._coil_base, values)
        else:
            for name, value in changes:
                self._call("write_coil", getattr(self.config.coils, name), value)
        actual = self.read_outputs()
        if actual != desired:
            # One more read before calling it a relay fault: a read-back is the one answer on
            # which the lane faults, so it must not rest on a single frame.
            actual = self.read_outputs()
        if actual != desired:
            diff = {
                f: {"wanted": getattr(desired, f), "read": getattr(actual, f)}
                for f in COIL_FIELDS
                if getattr(actual, f) != getattr(desired, f)
            }
            self._dump_frames("read-back mismatch")
            raise ReadbackMismatch(f"coil read-back mismatch on board {self.config.name}: {diff}")

    def close(self) -> None:
        """Close the serial port (idempotent)."""
        self._client.close()

    # ------------------------------------------------------------------ internals
    def _call(self, method: str, address: int, value: Any = None, **kw: Any) -> list[bool]:
        with self._lock:
            for attempt in range(STALE_RETRIES + 1):
                response = self._request(method, address, value, **kw)
                fc = response.function_code & 0x7F
                if fc == EXPECTED_FC[method]:
                    break
                # pymodbus takes the first frame with a good CRC as the answer. On a slow line
                # the answer to an earlier, timed-out request can arrive after the buffer was
                # cleaned: read as coils, discrete inputs look like "coils changed behind the
                # controller's back". Discard it, let the line go quiet and ask again.
                self.stale += 1
                logger.warning(
                    "board %s: discarded a late answer to an earlier request (function %d "
                    "while waiting for %d on %s@%d)%s", self.config.name, fc,
                    EXPECTED_FC[method], method, address,
                    "; asking again" if attempt < STALE_RETRIES else "")
                self._drain()
            else:
                err = BoardError(f"{method}@{address} on {self.config.port}: only answers to "
                                 f"earlier requests came back ({STALE_RETRIES + 1} in a row)")
                self._failed(err)
                raise err
        if response.isError():
            err = BoardError(f"{method}@{address}: exception response {response}")
            self._failed(err)
            raise err
        if self._failing:
            logger.warning("board %s: serial line recovered after %d error(s)",
                           self.config.name, self.errors)
            self._failing = False
            _RepeatFilter.failing.discard(self.config.name)
        return list(getattr(response, "bits", []) or [])

    def _request(self, method: str, address: int, value: Any = None, **kw: Any) -> Any:
        """One request and its answer; the caller holds the bus lock."""
        wait = self._last_frame_end + self._gap - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        started = time.monotonic()
        try:
            if not self._client.connected and not self._client.connect():
                raise BoardError(f"cannot open serial port {self.config.port}")
            fn = getattr(self._client, method)
            args = (address,) if value is None else (address, value)
            return fn(*args, device_id=self.config.slave_id, **kw)
        except BoardError as exc:
            self._failed(exc)
            raise
        except (ModbusException, OSError, ValueError) as exc:
            # ValueError: pymodbus' decoder on a frame that passed CRC but is malformed
            self._client.close()
            heard = any(d == "rx" and t >= started for t, d, _b in self.frames)
            why = "answers came back but were invalid (bad CRC or garbage)" if heard \
                else "the board did not answer"
            err = BoardError(f"{method}@{address} on {self.config.port}: {why}: {exc}")
            self._failed(err)
            raise err from exc
        finally:
            self._last_frame_end = time.monotonic()

    def _drain(self) -> None:
        """Wait until the line has been quiet for a frame time, discarding what arrives."""
        port = self._client.socket
        quiet = max(self._gap * 4, 0.02)
        deadline = time.monotonic() + self.config.timeout_s
        try:
            while port is not None and time.monotonic() < deadline:
                time.sleep(quiet)
                if not port.in_waiting:
                    break
                port.reset_input_buffer()
        except OSError:
            self._client.close()

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        if not self._failing:
            logger.error("board %s: %s", self.config.name, exc)
            self._failing = True
            _RepeatFilter.failing.add(self.config.name)
        else:
            logger.debug("board %s: %s", self.config.name, exc)
        self._dump_frames(str(exc))

    def _trace(self, sending: bool, data: bytes) -> bytes:
        self.frames.append((time.monotonic(), "tx" if sending else "rx", bytes(data)))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("board %s %s %s", self.config.name, "tx" if sending else "rx",
                         data.hex(" "))
        return data

    def _dump_frames(self, why: str) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return
        lines = [f"  {t:.3f} {d} {b.hex(' ')}" for t, d, b in self.frames]
        logger.debug("board %s: last %d frames before %s:\n%s", self.config.name, len(lines),
                     why, "\n".join(lines))
