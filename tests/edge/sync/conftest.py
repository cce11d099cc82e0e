"""Fixtures of the sync tests: a real Mosquitto per test, keys, config, central simulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.config import GateEdgeConfig
from edge.sync.service import SyncService
from simulators.central.broker import Mosquitto
from simulators.central.central import CentralSim
from tests.edge.sync import support


@pytest.fixture
def config(tmp_path: Path, broker: Mosquitto, keys: support.Keys) -> GateEdgeConfig:
    return support.load(support.write_config(tmp_path, [broker.port], keys))


@pytest.fixture
def central(broker: Mosquitto, keys: support.Keys) -> Iterator[CentralSim]:
    sim = support.central_sim([broker.port], keys).start()
    yield sim
    sim.stop()


@pytest.fixture
def service(config: GateEdgeConfig, request: pytest.FixtureRequest) -> Iterator[SyncService]:
    # the centre first, so the snapshot a fresh checkpoint asks for at connect is answered
    # before the test publishes anything
    with_central = "central" in request.fixturenames
    if with_central:
        with_central = request.getfixturevalue("central").answer_resync
    svc = SyncService(config)
    svc.start()
    assert svc.link is not None and svc.link.wait_connected(10), svc.link.last_error if svc.link else ""
    if with_central:
        assert support.wait_start_snapshot(config)
    yield svc
    svc.stop()
