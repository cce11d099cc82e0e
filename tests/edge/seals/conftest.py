"""Fixtures for the seal-reader tests: simulators on real ptys, and a check that no reader
thread outlives its test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.seals import BarcodeScannerSimulator, ESealReaderSimulator


@pytest.fixture(autouse=True)
def _no_leaked_reader_threads() -> Iterator[None]:
    yield
    leaked = [t.name for t in threading.enumerate() if t.name.startswith("seal-")]
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture
def eseal_sim(tmp_path: Path) -> Iterator[ESealReaderSimulator]:
    with ESealReaderSimulator(tmp_path / "seal-1", seed=7) as sim:
        yield sim


@pytest.fixture
def barcode_sim(tmp_path: Path) -> Iterator[BarcodeScannerSimulator]:
    with BarcodeScannerSimulator(tmp_path / "scan-1", prefix="]C0", seed=7) as sim:
        yield sim
