"""max_cache_age: a cache fed only by old batches makes the matcher refer (CACHE_STALE); the
centre's empty heartbeat batch makes it fresh again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from edge.config import GateEdgeConfig
from edge.domain.model import PassageReads, PlateRead, ReasonCode
from edge.matching.matcher import decide
from edge.store.cache import ManifestCache
from edge.sync.service import SyncService
from simulators.central import data
from simulators.central.broker import Mosquitto
from simulators.central.central import CentralSim
from tests.edge.sync import support

pytestmark = pytest.mark.mqtt


def _reasons(config: GateEdgeConfig, cache: ManifestCache, plate: str) -> set[ReasonCode]:
    reads = PassageReads(lane="in-1", tractor=(PlateRead(lane="in-1", text=plate, confidence=0.97),),
                         at=datetime.now(UTC))
    return set(decide(reads, cache, config.policy, config.grammars(), site=support.SITE,
                      lane=config.lane("in-1")).reasons)


@pytest.fixture
def central(broker: Mosquitto, keys: support.Keys) -> Iterator[CentralSim]:
    """A centre that leaves the start-up snapshot request unanswered: its signature would
    make the cache fresh, and this test is about a cache whose only batch is old."""
    sim = support.central_sim([broker.port], keys, answer_resync=False).start()
    yield sim
    sim.stop()


def test_stale_batches_refer_and_a_heartbeat_refreshes(service: SyncService, central: CentralSim,
                                                       config: GateEdgeConfig) -> None:
    item = data.generate(1)[0]
    central.publish_manifests(support.SITE, [item], signed_at=datetime.now(UTC) - timedelta(hours=7))
    cache = ManifestCache.open(config.storage.cache_path, readonly=True)
    try:
        assert support.wait_until(lambda: cache.meta().get("seq") == "1", 10)
        assert ReasonCode.CACHE_STALE in _reasons(config, cache, item["tractor_plate"])
        central.publish_manifests(support.SITE, [])          # heartbeat: empty, signed now
        assert support.wait_until(lambda: cache.meta().get("seq") == "2", 10)
        assert ReasonCode.CACHE_STALE not in _reasons(config, cache, item["tractor_plate"])
    finally:
        cache.close()
