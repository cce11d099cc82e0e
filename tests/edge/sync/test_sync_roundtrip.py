"""Down and up over a real Mosquitto: batches applied, passages delivered once, commands."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from edge.config import GateEdgeConfig
from edge.store import outbox
from edge.store.cache import ManifestCache
from edge.store.records import Records
from edge.sync.downlink import LaneCommand
from edge.sync.service import SyncService
from simulators.central import data
from simulators.central.central import CentralSim
from tests.edge.sync import support

pytestmark = pytest.mark.mqtt


def _cache(config: GateEdgeConfig) -> ManifestCache:
    return ManifestCache.open(config.storage.cache_path, readonly=True)


def test_manifest_batches_are_applied_in_order_with_their_seq(
        service: SyncService, central: CentralSim, config: GateEdgeConfig) -> None:
    items = data.generate(30)
    for start in range(0, 30, 10):
        central.publish_manifests(support.SITE, items[start:start + 10])
    cache = _cache(config)
    try:
        assert support.wait_until(lambda: cache.meta().get("seq") == "3", 10)
        assert cache.count() == 30
        assert cache.by_declaration(items[17]["declaration_no"]) is not None
        assert cache.signed_at() is not None
    finally:
        cache.close()
    # the edge acknowledged each applied batch through the outbox
    assert central.wait_for(support.SITE, 4, 10, kind="ack")   # and the start-up snapshot
    acks = support.acks(central)
    assert [a["body"]["seq"] for a in acks] == [1, 2, 3]
    assert all(a["body"]["status"] == "applied" for a in acks)


def test_hotlist_batch_adds_and_removes_entries(service: SyncService, central: CentralSim,
                                                config: GateEdgeConfig) -> None:
    central.publish_hotlist(support.SITE, [
        {"kind": "plate", "value": "20C-111.22", "reason": "alert AS-1", "action": "hold"},
        {"kind": "container", "value": "MSKU1234565", "reason": "alert AS-2", "action": "refer"}])
    central.publish_hotlist(support.SITE, [], removed=[{"kind": "plate", "value": "20C-111.22"}])
    cache = _cache(config)
    try:
        assert support.wait_until(lambda: cache.meta().get("hotlist_seq") == "2", 10)
        assert [(e.kind.value, e.value) for e in cache.hotlist()] == [("container", "MSKU1234565")]
    finally:
        cache.close()


def test_passages_reach_the_centre_once_in_seq_order(service: SyncService, central: CentralSim,
                                                     config: GateEdgeConfig) -> None:
    ids = support.save_passages(config.storage.records_path, 200)
    service.notify_outbox()
    assert central.wait_for(support.SITE, 200, 20, kind="passage")
    got = central.messages(support.SITE, "passage")
    assert [m["body"]["passage_id"] for m in got] == ids
    assert central.report()["sites"][support.SITE]["gaps"] == []
    records = Records.open(config.storage.records_path)
    try:
        assert support.wait_until(lambda: outbox.depth(records.db) == 0, 10)
        attempts = records.db.execute("SELECT DISTINCT attempts FROM outbox WHERE kind = 'passage'")
        assert [row[0] for row in attempts.fetchall()] == [1]     # each sent once, acked once
    finally:
        records.close()


def test_status_birth_is_retained_and_signed(service: SyncService, central: CentralSim) -> None:
    # The central connected after the edge: it gets the retained birth message.
    assert support.wait_until(lambda: central.report()["sites"].get(support.SITE, {})
                              .get("status") == "online", 10)


def test_lane_command_is_delivered_once_into_the_event_loop(
        config: GateEdgeConfig, central: CentralSim) -> None:
    received: list[tuple[LaneCommand, bool]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        got = asyncio.Event()

        def on_command(cmd: LaneCommand) -> None:
            received.append((cmd, threading.current_thread() is threading.main_thread()))
            got.set()

        svc = SyncService(config, on_command=on_command)
        await svc.astart()
        try:
            assert await asyncio.to_thread(svc.link.wait_connected, 10)  # type: ignore[union-attr]
            nonce = central.send_command(support.SITE, "in-2", "open", passage_id="01TEST",
                                         ttl_s=30)
            await asyncio.wait_for(got.wait(), 10)
            # the same signed message again (a replay) is rejected
            assert loop.is_running()
            assert central.wait_for(support.SITE, 2, 10, kind="ack")
            ack = support.acks(central)[0]["body"]
            assert (ack["nonce"], ack["status"]) == (nonce, "accepted")
        finally:
            await svc.astop()

    asyncio.run(main())
    assert len(received) == 1
    cmd, on_loop_thread = received[0]
    assert (cmd.lane, cmd.command, cmd.passage_id, cmd.kid) == ("in-2", "open", "01TEST",
                                                                support.CENTRAL_KID)
    assert on_loop_thread


def test_graceful_stop_publishes_offline_status(config: GateEdgeConfig, central: CentralSim,
                                                tmp_path: Path) -> None:
    svc = SyncService(config)
    svc.start()
    assert svc.link is not None and svc.link.wait_connected(10)
    assert support.wait_until(lambda: central.report()["sites"].get(support.SITE, {})
                              .get("status") == "online", 10)
    svc.stop()
    assert support.wait_until(lambda: central.report()["sites"][support.SITE]["status"] == "offline",
                              10)


def test_a_fresh_checkpoint_asks_for_a_snapshot_at_first_connect(
        central: CentralSim, config: GateEdgeConfig) -> None:
    """Installed after the centre published its batches (and with no batch due for hours), a
    checkpoint with an empty cache must not refer every truck: it asks at once."""
    items = data.generate(12)
    central.publish_manifests(support.SITE, items)      # nobody subscribed yet: gone
    svc = SyncService(config)
    svc.start()
    cache = _cache(config)
    try:
        assert support.wait_until(lambda: cache.count() == 12, 10), cache.meta()
        assert cache.meta()["source"].startswith("mqtt-snapshot:")
        assert cache.meta()["resync_pending"] == ""
        assert central.report()["sites"][support.SITE]["resync_requests"] == 1
    finally:
        cache.close()
        svc.stop()
    again = SyncService(config)      # a restart with a filled cache does not ask again
    again.start()
    try:
        assert again.link is not None and again.link.wait_connected(10)
        time.sleep(1.0)
        assert central.report()["sites"][support.SITE]["resync_requests"] == 1
    finally:
        again.stop()
