"""The down pipeline: a worker process prepares, one writer applies in order, PUBACK after commit.

Real SQLite files and a real worker process; the manual-acknowledgement test uses a real
Mosquitto (redelivery is the broker's behaviour, not something a mock could show).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.config import GateEdgeConfig
from edge.store.cache import ManifestCache
from edge.store.records import Records
from edge.sync.downlink import Downlink, Handled
from edge.sync.journal import SyncJournal
from edge.sync.link import AckToken, Broker, LinkSettings, MqttLink
from edge.sync.pipeline import DownPipeline
from edge.sync.service import SyncService
from edge.sync.signing import KeyRing, sign_bytes
from edge.sync.topics import Topics
from simulators.central import data
from simulators.central.broker import Mosquitto
from simulators.central.central import CentralSim
from tests.edge.sync import support

SITE = "HUUNGHI"
KEY = Ed25519PrivateKey.generate()
TOPICS = Topics(SITE)
BIG = 200   # declarations: ~80 kB, above the pipeline's worker threshold


def _batch(seq: int, n: int, *, start: int, version: int | None = None,
           items: list[dict[str, Any]] | None = None) -> bytes:
    return sign_bytes({"type": "manifests", "site": SITE, "seq": seq,
                       "version": seq if version is None else version,
                       "signed_at": datetime.now(UTC).isoformat(),
                       "items": items if items is not None else data.generate(n, seed=seq, start=start)},
                      KEY, "c")


def _stream() -> list[bytes]:
    """Large and small batches, a redelivery, a bad declaration, a replay, old news, a gap."""
    bad = data.generate(BIG, seed=9, start=5000)
    bad[150]["containers"] = ["MSKU1234560"]          # wrong check digit deep inside
    first = _batch(1, BIG, start=0)
    return [
        first,
        first,                                          # QoS 1 duplicate
        _batch(2, 3, start=1000),
        _batch(3, BIG, start=2000),
        _batch(4, 0, start=0, items=bad),               # rejected whole: INVALID_BATCH
        _batch(3, BIG, start=9000),                     # same seq, other content: REPLAYED
        _batch(4, BIG, start=3000),
        first,                                          # older than the cache: OUT_OF_ORDER
        _batch(6, BIG, start=4000),                     # 5 missing: gap, resync requested
        b'{"not": "json"',
    ]


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[ManifestCache, Records]]:
    cache = ManifestCache.open(tmp_path / "cache.db", check_same_thread=False)
    records = Records.open(tmp_path / "records.db", check_same_thread=False)
    yield cache, records
    cache.close()
    records.close()


def _downlink(cache: ManifestCache, records: Records, resyncs: list[str]) -> Downlink:
    return Downlink(topics=TOPICS, keys=KeyRing({"c": KEY.public_key()}), cache=cache,
                    journal=SyncJournal(records, TOPICS, alarm_interval_s=0), lanes={"in-1"},
                    request_resync=resyncs.append)


def _state(cache: ManifestCache) -> tuple[int, dict[str, str], list[tuple[Any, ...]]]:
    meta = {k: v for k, v in cache.meta().items() if k != "signed_at"}
    rows = cache.db.execute("SELECT declaration_no, version, tractor_plate FROM manifests "
                            "ORDER BY declaration_no").fetchall()
    return cache.count(), meta, rows


def test_pipeline_gives_the_same_answers_and_cache_as_applying_one_by_one(
        tmp_path: Path, stores: tuple[ManifestCache, Records]) -> None:
    stream = _stream()
    # reference: the synchronous path, every message prepared and applied in this thread
    ref_cache = ManifestCache.open(tmp_path / "ref-cache.db")
    ref_records = Records.open(tmp_path / "ref-records.db")
    ref_resyncs: list[str] = []
    reference = _downlink(ref_cache, ref_records, ref_resyncs)
    expected = [reference.handle(TOPICS.manifests, p) for p in stream]
    # pipelined: all submitted at once (as a burst from the broker), one worker process
    resyncs: list[str] = []
    downlink = _downlink(*stores, resyncs)
    done: list[tuple[Handled, Any]] = []
    pipeline = DownPipeline(downlink, lambda h, token: done.append((h, token)), workers=1)
    pipeline.start()
    try:
        for i, payload in enumerate(stream):
            pipeline.submit(TOPICS.manifests, payload, token=i)
        assert pipeline.join(60)
    finally:
        pipeline.stop()
    assert [token for _, token in done] == list(range(len(stream)))      # in arrival order
    assert [h for h, _ in done] == expected
    assert [h.code for h in expected] == ["", "DUPLICATE", "", "", "INVALID_BATCH", "REPLAYED",
                                          "", "OUT_OF_ORDER", "SEQ_GAP", "MALFORMED_JSON"]
    assert "item 150: containers" in expected[4].message
    assert pipeline.prepared_in_worker == 8 and pipeline.prepared_inline == 2
    assert _state(stores[0]) == _state(ref_cache)
    assert stores[0].count() == 3 * BIG + 3
    assert len(resyncs) == len(ref_resyncs) == 1
    ref_cache.close()
    ref_records.close()


def test_a_dead_worker_costs_time_not_messages(stores: tuple[ManifestCache, Records]) -> None:
    downlink = _downlink(*stores, [])
    done: list[Handled] = []
    pipeline = DownPipeline(downlink, lambda h, token: done.append(h), workers=1)
    pipeline.start()
    try:
        pipeline.warm_up()
        assert pipeline.wait_ready(30)
        pool = pipeline._pool   # the test reaches in to kill the worker as the OOM killer would
        assert pool is not None
        for pid in list(pool._processes):
            os.kill(pid, signal.SIGKILL)
        for seq in (1, 2, 3):
            pipeline.submit(TOPICS.manifests, _batch(seq, BIG, start=seq * 1000))
        assert pipeline.join(60)
        assert [h.status for h in done] == ["applied"] * 3
        assert stores[0].meta()["seq"] == "3" and stores[0].count() == 3 * BIG
        pipeline.submit(TOPICS.manifests, _batch(4, BIG, start=4000))   # a new worker takes it
        assert pipeline.join(60)
        assert done[-1].status == "applied" and pipeline.prepared_in_worker >= 1
    finally:
        pipeline.stop()


def test_stop_leaves_unapplied_messages_unacknowledged(stores: tuple[ManifestCache, Records]) -> None:
    downlink = _downlink(*stores, [])
    acked: list[int] = []
    gate = threading.Event()

    def on_done(handled: Handled, token: Any) -> None:
        gate.wait(10)            # hold the writer on the first message while stop() comes in
        acked.append(token)

    pipeline = DownPipeline(downlink, on_done, workers=0)
    pipeline.start()
    for seq in range(1, 6):
        pipeline.submit(TOPICS.manifests, _batch(seq, 2, start=seq * 10), token=seq)
    assert support.wait_until(lambda: pipeline.depth == 5 and stores[0].count() == 2, 10)
    stopper = threading.Thread(target=pipeline.stop)
    stopper.start()
    gate.set()
    stopper.join(10)
    # the one being applied finished and was acknowledged; the rest stay with the broker
    assert acked == [1]
    assert stores[0].meta()["seq"] == "1" and stores[0].count() == 2


@pytest.mark.mqtt
def test_manual_ack_only_on_the_connection_the_message_came_on(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "mosq", persistence=True) as mosq:
        got: list[tuple[bytes, bool, AckToken | None]] = []
        settings = LinkSettings(client_id="edge-ack", brokers=[Broker("127.0.0.1", mosq.port)],
                                subscriptions=[("t/#", 1)], manual_ack=True, receive_maximum=4,
                                backoff_min_s=0.1, backoff_max_s=0.2)
        link: MqttLink

        def on_message(topic: str, payload: bytes, message: mqtt.MQTTMessage) -> None:
            got.append((payload, bool(message.dup), link.ack_token(message)))

        link = MqttLink(settings, on_message=on_message)
        sender = MqttLink(LinkSettings(client_id="sender", brokers=[Broker("127.0.0.1", mosq.port)]))
        link.start()
        sender.start()
        try:
            assert link.wait_connected(10) and sender.wait_connected(10)
            for body in (b"one", b"two"):
                sender.publish("t/x", body, qos=1).wait_for_publish(5)
            assert support.wait_until(lambda: len(got) == 2, 10)
            assert link.ack(got[0][2])               # "one" applied and acknowledged; "two" not yet
            _wait_written(link)
            connects = link.connects
            _drop_connection(link)
            assert support.wait_until(lambda: link.connects > connects and len(got) == 3, 10), got
            assert got[2][:2] == (b"two", True)      # the broker delivered "two" again, as DUP
            assert not link.ack(got[1][2])           # the old connection's PUBACK is not sent
            assert link.ack(got[2][2])
            _wait_written(link)
            connects = link.connects
            _drop_connection(link)
            assert support.wait_until(lambda: link.connects > connects, 10)
            sender.publish("t/x", b"three", qos=1).wait_for_publish(5)
            assert support.wait_until(lambda: len(got) == 4, 10)
            assert [g[0] for g in got] == [b"one", b"two", b"two", b"three"]   # nothing else again
        finally:
            sender.stop()
            link.stop()


def _wait_written(link: MqttLink) -> None:
    """A PUBACK is queued by ack() and written by paho's thread; cut the line only after that."""
    assert support.wait_until(lambda: not link._client.want_write(), 5)


def _drop_connection(link: MqttLink) -> None:
    """Cut the TCP connection under paho, as a network failure would (no DISCONNECT packet)."""
    sock = link._client.socket()   # the test reaches in: there is no public "break the network"
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)


@pytest.mark.mqtt
def test_batches_received_but_not_applied_at_shutdown_come_again(
        config: GateEdgeConfig, central: CentralSim) -> None:
    """Manual PUBACK through the whole service: what was received but not yet committed when
    the service stopped is still the broker's; the next start applies it, once, in order."""
    svc = SyncService(config)
    svc.start()
    try:
        assert svc.link is not None and svc.link.wait_connected(10)
        assert support.wait_start_snapshot(config)
        assert svc.downlink is not None and svc.pipeline is not None
        apply = svc.downlink.apply

        def slow_apply(topic: str, size: int, prepared: Any) -> Handled:
            time.sleep(0.3)      # a slow disk: batches pile up behind the one being written
            return apply(topic, size, prepared)

        svc.downlink.apply = slow_apply  # type: ignore[method-assign]
        for i in range(5):
            central.publish_manifests(SITE, data.generate(BIG, seed=i, start=i * 1000))
        pipeline = svc.pipeline
        assert support.wait_until(lambda: pipeline.depth >= 4, 10), pipeline.depth
    finally:
        svc.stop()
    cache = ManifestCache.open(config.storage.cache_path, readonly=True)
    try:
        applied = int(cache.meta().get("seq", "0"))
        assert applied < 5 and cache.count() == applied * BIG
        again = SyncService(config)
        again.start()
        try:
            assert support.wait_until(lambda: cache.meta().get("seq") == "5", 30), cache.meta()
            assert cache.count() == 5 * BIG
            assert again.pipeline is not None and again.pipeline.prepared_in_worker >= 5 - applied
            assert again.downlink is not None and again.downlink.counts["rejected:REPLAYED"] == 0
            assert central.wait_for(SITE, 6, 10, kind="ack")   # before stopping: acks go via the outbox
            assert [a["body"]["seq"] for a in support.acks(central)] == [1, 2, 3, 4, 5]
        finally:
            again.stop()
    finally:
        cache.close()
