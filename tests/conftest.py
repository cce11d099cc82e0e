"""Fixtures shared by the whole suite: real SQLite files in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.store.cache import ManifestCache
from edge.store.records import Records
from simulators.central.broker import Mosquitto
from tests.edge.sync import support

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ManifestCache]:
    store = ManifestCache.open(tmp_path / "cache.db")
    yield store
    store.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto on a free loopback port, stopped after the test."""
    with Mosquitto(tmp_path / "mosquitto") as mosq:
        yield mosq


@pytest.fixture
def keys(tmp_path: Path) -> support.Keys:
    """Fresh Ed25519 keys for the centre and the site."""
    return support.make_keys(tmp_path / "keys")


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    store = Records.open(tmp_path / "records.db")
    yield store
    store.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the browser tests last.

    Playwright's sync API keeps an event loop running in the main thread for the rest of the
    session once its (session-scoped) browser is up, after which ``asyncio.run`` in any later
    test fails. Ordering them last keeps every suite runnable in one pytest process.
    """
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
