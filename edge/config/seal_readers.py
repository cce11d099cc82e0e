"""``seal_readers``: RFID e-seal readers and bolt-seal barcode scanners on serial ports.

Each reader is a plug-in selected by ``type``; adding a device family means adding one model
here and one driver module (STYLE.md §3).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edge.config.types import Section


class _SerialReader(Section):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="reader id")
    port: str = Field(..., description="serial device (udev name like /dev/gate-seal-1) or pty")
    baudrate: int = Field(9600, description="serial speed in baud")
    window_s: float = Field(
        30.0, gt=0, le=600,
        description="reads of the same seal within this window collapse into one read")


class ESealReaderConfig(_SerialReader):
    """RFID e-seal reader (ISO 18185-like data) speaking STX payload ETX CRC16 frames."""

    type: Literal["eseal"] = Field(..., description="RFID e-seal reader")


class BarcodeScannerConfig(_SerialReader):
    """Bolt-seal barcode scanner sending ASCII lines ending in CR LF."""

    type: Literal["barcode"] = Field(..., description="bolt-seal barcode scanner")
    strip_prefix: str = Field("", description="characters the scanner adds before each code")
    strip_suffix: str = Field("", description="characters the scanner adds after each code")


SealReaderConfig = Annotated[ESealReaderConfig | BarcodeScannerConfig, Field(discriminator="type")]
