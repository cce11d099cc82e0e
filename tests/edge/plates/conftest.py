"""Shared fixtures for plate reading: one recognizer per session (loading PP-OCRv4 takes ~1 s)."""

from __future__ import annotations

import pytest

from edge.plates.ocr import PlateRecognizer
from edge.plates.reader import PlateReader
from tests.conftest import SHARED_DATA


@pytest.fixture(scope="session")
def recognizer() -> PlateRecognizer:
    return PlateRecognizer()


@pytest.fixture(scope="session")
def reader() -> PlateReader:
    return PlateReader(with_detector=False)


@pytest.fixture(scope="session")
def shared_data():
    from training.dataset import data_root

    root = data_root()
    if root is None:
        pytest.skip(f"shared plate data not present ({SHARED_DATA})")
    return root
