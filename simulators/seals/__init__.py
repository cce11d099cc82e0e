"""Simulated seal readers on pseudo-terminals: an RFID e-seal reader and a bolt-seal scanner.

Python API for tests and the scenario runner: ``ESealReaderSimulator`` and
``BarcodeScannerSimulator`` (context managers; ``.path`` is the port for gate-edge's config).
Command-line: ``gate-sim seal-reader`` and ``gate-sim barcode-scanner``.
"""

from __future__ import annotations

from simulators.seals.control import Controller, ControlSocket
from simulators.seals.devices import BarcodeScannerSimulator, ESealReaderSimulator
from simulators.seals.pty_port import PtyPort

__all__ = ["BarcodeScannerSimulator", "ControlSocket", "Controller", "ESealReaderSimulator", "PtyPort"]
