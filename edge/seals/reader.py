"""The serial runtime of one seal reader: a thread per port feeding the asyncio loop.

Why a thread per port rather than an asyncio transport: pyserial is blocking, the
``serial_asyncio`` add_reader approach hides a vanished port (pty closed, USB unplugged) behind
callbacks that never fire, and a checkpoint has a handful of readers, not hundreds. One
daemon thread per port does the blocking ``read`` with a short timeout, decodes with the
driver (cheap, so the event loop never sees raw bytes), and hands finished ``SealRead``s and
alarms to the loop with ``call_soon_threadsafe``. The same thread owns reconnection: when the
port disappears it closes it, waits with exponential back-off, raises an alarm after
``alarm_after_s`` and clears it once a reopen succeeds — no restart needed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

import serial

from edge.domain.model import SealRead, utcnow
from edge.seals.drivers import ReaderConfig, create_driver
from edge.seals.drivers.base import Decoded
from edge.seals.health import AlarmKind, ErrorLog, ErrorRate, ReaderAlarm, ReaderStats
from edge.seals.protocol import FrameError

logger = logging.getLogger(__name__)

ReadSink = Callable[[SealRead], None]
AlarmSink = Callable[[ReaderAlarm], None]


class SerialSealReader:
    """Reads one seal reader's serial port until stopped; survives unplugging and garbage."""

    def __init__(self, config: ReaderConfig, lane: str, on_read: ReadSink,
                 on_alarm: AlarmSink | None = None, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.lane = lane
        self.stats = ReaderStats()
        self._on_read = on_read
        self._on_alarm = on_alarm
        self._clock = clock
        self._driver = create_driver(config, lane)
        self._log = ErrorLog(config.name, lane, config.log_every_s)
        self._rate = ErrorRate(config.error_alarm_threshold, config.error_window_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._extra = {"device": config.name, "lane": lane}
        self._read_timeout = min(0.1, config.frame_timeout_s / 2)

    @property
    def name(self) -> str:
        """The reader's configured name."""
        return self.config.name

    async def start(self) -> None:
        """Start the port thread; returns at once (the port may still be absent)."""
        if self._thread is not None:
            raise RuntimeError(f"seal reader {self.name} already started")
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"seal-reader-{self.name}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop the thread and close the port; waits at most about one read timeout."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 5.0)
            if thread.is_alive():
                logger.error("seal reader thread did not stop", extra=self._extra)

    # -- the port thread -------------------------------------------------------------------

    def _run(self) -> None:
        cfg = self.config
        delay = cfg.reconnect_min_s
        down_since = time.monotonic()
        failures = 0
        while not self._stop.is_set():
            try:
                # exclusive: an flock, so a second gate-edge (or a stray terminal program) cannot
                # silently steal half the bytes of the port.
                port = serial.serial_for_url(cfg.port, baudrate=cfg.baudrate, timeout=self._read_timeout,
                                             exclusive=True)
            except (serial.SerialException, OSError, ValueError) as exc:
                failures += 1
                # First failure at ERROR, then DEBUG until it recovers (HA modbus practice).
                level = logging.ERROR if failures == 1 else logging.DEBUG
                logger.log(level, "seal reader port %s unavailable: %s; retrying", cfg.port, exc,
                           extra=self._extra)
                self._wait_down(delay, down_since)
                delay = min(delay * 2, cfg.reconnect_max_s)
                continue
            down_for = time.monotonic() - down_since
            if self.stats.connects or failures:
                logger.info("seal reader port %s open again after %.1f s", cfg.port, down_for,
                            extra=self._extra)
            failures = 0
            delay = cfg.reconnect_min_s
            self.stats.connects += 1
            self.stats.connected = True
            self._set_alarm(AlarmKind.DISCONNECTED, False, f"port {cfg.port} is back")
            try:
                self._read_loop(port)
            except (serial.SerialException, OSError) as exc:
                logger.error("seal reader port %s lost: %s", cfg.port, exc, extra=self._extra)
            except Exception:
                # A bug must not silence the lane's seal reader for the rest of the day: log it
                # with its traceback, drop the half frame, reopen the port after the back-off.
                logger.exception("seal reader failed unexpectedly; reopening the port",
                                 extra=self._extra)
                self.stats.errors["internal"] += 1
            finally:
                self.stats.connected = False
                port.close()
                err = self._driver.reset()
                if err is not None:
                    self._handle(Decoded(errors=[err]))
            if not self._stop.is_set():
                self.stats.disconnects += 1
                down_since = time.monotonic()
                self._wait_down(delay, down_since)

    def _wait_down(self, delay: float, down_since: float) -> None:
        """Back off, but wake in time to raise the disconnect alarm when it falls due."""
        alarmed = AlarmKind.DISCONNECTED in self.stats.alarms
        due = down_since + self.config.alarm_after_s - time.monotonic()
        if not alarmed and due <= 0:
            self._set_alarm(AlarmKind.DISCONNECTED, True,
                            f"port {self.config.port} gone for {self.config.alarm_after_s:g} s")
            alarmed = True
        wait = delay if alarmed else min(delay, due)
        if self._stop.wait(max(wait, 0.0)):
            return
        if not alarmed and time.monotonic() - down_since >= self.config.alarm_after_s:
            self._set_alarm(AlarmKind.DISCONNECTED, True,
                            f"port {self.config.port} gone for {self.config.alarm_after_s:g} s")

    def _read_loop(self, port: serial.SerialBase) -> None:
        last_rx = time.monotonic()
        while not self._stop.is_set():
            data = port.read(1)
            mono = time.monotonic()
            if data:
                waiting = port.in_waiting
                if waiting:
                    data += port.read(waiting)
                last_rx = mono
                self.stats.bytes_in += len(data)
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("rx %d bytes: %s", len(data), data[:512].hex(" "), extra=self._extra)
                self._handle(self._driver.feed(data, self._clock()))
            elif self._driver.pending and mono - last_rx >= self.config.frame_timeout_s:
                err = self._driver.reset()
                if err is not None:
                    self._handle(Decoded(errors=[err]))
            if (AlarmKind.ERRORS in self.stats.alarms and self._rate.count(mono) == 0):
                self._set_alarm(AlarmKind.ERRORS, False,
                                f"no malformed frames for {self.config.error_window_s:g} s")

    def _handle(self, decoded: Decoded) -> None:
        mono = time.monotonic()
        for error in decoded.errors:
            self._count(error, mono)
        if decoded.reads:
            self.stats.reads += len(decoded.reads)
            for read in decoded.reads:
                logger.debug("seal read %s status=%s malformed=%s raw=%r", read.seal_id,
                             read.status.value, read.malformed, read.raw, extra=self._extra)
            self._call(self._deliver, decoded.reads)

    def _count(self, error: FrameError, mono: float) -> None:
        self.stats.errors[error.kind.value] += 1
        self._log.record(error, mono)
        self._rate.add(mono)
        if (AlarmKind.ERRORS not in self.stats.alarms
                and self._rate.count(mono) >= self.config.error_alarm_threshold):
            self._set_alarm(AlarmKind.ERRORS, True,
                            f"{self.config.error_alarm_threshold} malformed frames within "
                            f"{self.config.error_window_s:g} s")

    def _set_alarm(self, kind: AlarmKind, active: bool, message: str) -> None:
        if (kind in self.stats.alarms) == active:
            return
        if active:
            self.stats.alarms.add(kind)
            logger.error("seal reader alarm %s: %s", kind.value, message, extra=self._extra)
        else:
            self.stats.alarms.discard(kind)
            logger.info("seal reader alarm %s cleared: %s", kind.value, message, extra=self._extra)
        if self._on_alarm is not None:
            alarm = ReaderAlarm(self.name, self.lane, kind, active, message, self._clock())
            self._call(self._on_alarm, alarm)

    def _deliver(self, reads: list[SealRead]) -> None:
        for read in reads:
            try:
                self._on_read(read)
            except Exception:
                logger.exception("seal read consumer failed; read %s kept in the log", read.seal_id,
                                 extra=self._extra)

    def _call(self, fn: Callable[..., object], arg: object) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, arg)
        except RuntimeError:  # loop closed between the check and the call: shutting down
            logger.debug("event loop closed; dropping delivery", extra=self._extra)
