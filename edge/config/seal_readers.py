"""``seal_readers``: RFID e-seal readers and bolt-seal barcode scanners on serial ports.

Each reader is a plug-in selected by ``type``; adding a device family means adding one model
here and one driver module in ``edge/seals/drivers/`` (STYLE.md §3). The wire formats are
specified in docs/protocols.md, "Seal-reader serial protocols".
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge.config.types import Section


class _SerialReader(Section):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="reader id")
    port: str = Field(..., description="serial device (udev name like /dev/gate-seal-1) or pty")
    baudrate: int = Field(9600, description="serial speed in baud")
    window_s: float = Field(
        30.0, gt=0, le=600,
        description="reads of the same seal within this window collapse into one read")
    reconnect_min_s: float = Field(
        0.5, gt=0, le=60,
        description="first wait before reopening a port that vanished (USB unplug); doubles per try")
    reconnect_max_s: float = Field(
        30.0, gt=0, le=600, description="longest wait between attempts to reopen the port")
    alarm_after_s: float = Field(
        10.0, ge=0, le=3600,
        description="raise a reader alarm when the port has been gone this long; cleared on recovery")
    error_alarm_threshold: int = Field(
        20, ge=1, le=100_000,
        description="raise a reader alarm when this many malformed frames arrive within error_window_s")
    error_window_s: float = Field(
        60.0, gt=0, le=3600, description="sliding window for error_alarm_threshold")
    frame_timeout_s: float = Field(
        0.5, gt=0, le=30,
        description="a frame or line left unfinished this long is dropped as truncated")
    log_every_s: float = Field(
        60.0, ge=0, le=3600,
        description="log repeated errors of one kind at WARNING at most this often (all at DEBUG)")

    @model_validator(mode="after")
    def _backoff_order(self) -> _SerialReader:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self


class ESealReaderConfig(_SerialReader):
    """RFID e-seal reader (ISO 18185-like data) speaking STX payload ETX CRC16 frames."""

    type: Literal["eseal"] = Field(..., description="RFID e-seal reader")
    max_payload_bytes: int = Field(
        240, ge=16, le=1024, description="longest unescaped payload accepted (protocol default 240)")


class BarcodeScannerConfig(_SerialReader):
    """Bolt-seal barcode scanner sending ASCII lines ending in CR LF."""

    type: Literal["barcode"] = Field(..., description="bolt-seal barcode scanner")
    strip_prefix: str = Field("", description="characters the scanner adds before each code")
    strip_suffix: str = Field("", description="characters the scanner adds after each code")
    max_line_chars: int = Field(
        64, ge=8, le=1024, description="longest line accepted before the CR LF terminator")


SealReaderConfig = Annotated[ESealReaderConfig | BarcodeScannerConfig, Field(discriminator="type")]
