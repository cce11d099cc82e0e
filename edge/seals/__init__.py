"""Seal readers: RFID e-seal readers and bolt-seal barcode scanners on serial ports.

``protocol`` is the e-seal wire codec, ``drivers`` the per-family decoders chosen by config
``type``, ``reader`` the serial runtime (thread per port, reconnect, alarms), ``window`` the
attachment of reads to the lane's passage, ``service`` the wiring from config. The wire formats
are in docs/protocols.md; operation in docs/seal-readers.md.
"""

from __future__ import annotations

from edge.seals.drivers import DRIVERS, SealDriver, create_driver
from edge.seals.health import AlarmKind, ReaderAlarm, ReaderStats
from edge.seals.reader import SerialSealReader
from edge.seals.service import SealReaderService
from edge.seals.window import SealWindow

__all__ = ["DRIVERS", "AlarmKind", "ReaderAlarm", "ReaderStats", "SealDriver", "SealReaderService",
           "SealWindow", "SerialSealReader", "create_driver"]
