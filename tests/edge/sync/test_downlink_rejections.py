"""Every bad down message is rejected with a logged reason, an alarm where it matters, the
client keeps running and the cache is unchanged (real Mosquitto, real SQLite)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.config import GateEdgeConfig
from edge.store.cache import ManifestCache
from edge.sync.service import SyncService
from edge.sync.signing import canonical, sign_bytes
from simulators.central import data
from simulators.central.central import CentralSim
from tests.edge.sync import support

pytestmark = pytest.mark.mqtt
SITE = support.SITE


@pytest.fixture
def config(tmp_path: Path, broker, keys: support.Keys) -> GateEdgeConfig:  # type: ignore[no-untyped-def]
    # a small payload limit so the oversized case stays cheap
    return support.load(support.write_config(tmp_path, [broker.port], keys,
                                             extra_mqtt="  max_payload_bytes: 65536"))


def _batch(seq: int, items: list[dict], *, site: str = SITE, signed_at: datetime | None = None,
           version: int | None = None) -> dict:
    return {"type": "manifests", "site": site, "seq": seq, "version": seq if version is None else version,
            "signed_at": (signed_at or datetime.now(UTC)).isoformat(), "items": items}


def _signed(central: CentralSim, body: dict) -> bytes:
    return sign_bytes(body, central.key, central.kid)


def _tampered(central: CentralSim) -> bytes:
    doc = json.loads(_signed(central, _batch(2, data.generate(2, seed=2))))
    doc["items"][0]["status"] = "released" if doc["items"][0]["status"] != "released" else "held"
    return canonical(doc)


def _unsigned(central: CentralSim) -> bytes:
    return canonical(_batch(2, data.generate(2, seed=2)))


def _wrong_key(central: CentralSim) -> bytes:
    return sign_bytes(_batch(2, data.generate(2, seed=2)), Ed25519PrivateKey.generate(), central.kid)


def _unknown_kid(central: CentralSim) -> bytes:
    return sign_bytes(_batch(2, data.generate(2, seed=2)), Ed25519PrivateKey.generate(), "stolen-1")


def _replayed_other_content(central: CentralSim) -> bytes:
    return _signed(central, _batch(1, data.generate(3, seed=99)))


def _out_of_order(central: CentralSim) -> bytes:
    return _signed(central, _batch(0 + 1, data.generate(1, seed=5), version=0))


def _malformed(central: CentralSim) -> bytes:
    return b'{"type": "manifests", "seq": 2, "items": [ {'


def _not_an_object(central: CentralSim) -> bytes:
    return b'[1, 2, 3]'


def _oversized(central: CentralSim) -> bytes:
    return _signed(central, _batch(2, data.generate(300, seed=3)))


def _other_site(central: CentralSim) -> bytes:
    return _signed(central, _batch(2, data.generate(2, seed=2), site="LAOBAO"))


def _invalid_item(central: CentralSim) -> bytes:
    bad = data.generate(2, seed=2)
    bad[1]["containers"] = ["MSKU1234560"]  # wrong ISO 6346 check digit
    return _signed(central, _batch(2, bad))


def _future(central: CentralSim) -> bytes:
    return _signed(central, _batch(2, data.generate(2, seed=2),
                                   signed_at=datetime.now(UTC) + timedelta(hours=2)))


def _hotlist_on_manifest_topic(central: CentralSim) -> bytes:
    return _signed(central, {**_batch(2, []), "type": "hotlist"})


CASES: list[tuple[str, Callable[[CentralSim], bytes], str, bool]] = [
    ("tampered", _tampered, "BAD_SIGNATURE", True),
    ("unsigned", _unsigned, "UNSIGNED", True),
    ("signed with another key", _wrong_key, "BAD_SIGNATURE", True),
    ("unknown key id", _unknown_kid, "UNKNOWN_KEY", True),
    ("replayed seq, other content", _replayed_other_content, "REPLAYED", True),
    ("malformed JSON", _malformed, "MALFORMED_JSON", True),
    ("JSON but not an object", _not_an_object, "MALFORMED_JSON", True),
    ("oversized", _oversized, "PAYLOAD_TOO_LARGE", True),
    ("signed for another site", _other_site, "WRONG_SITE", True),
    ("invalid declaration inside", _invalid_item, "INVALID_BATCH", True),
    ("signed in the future", _future, "SIGNED_IN_FUTURE", True),
    ("wrong type for the topic", _hotlist_on_manifest_topic, "WRONG_TYPE", True),
]


@pytest.mark.parametrize(("label", "make", "code", "alarm"), CASES, ids=[c[0] for c in CASES])
def test_bad_batch_is_rejected_and_cache_unchanged(
        label: str, make: Callable[[CentralSim], bytes], code: str, alarm: bool,
        service: SyncService, central: CentralSim, config: GateEdgeConfig,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edge.sync")
    first = data.generate(5, seed=1)
    central.publish_manifests(SITE, first)
    cache = ManifestCache.open(config.storage.cache_path, readonly=True)
    try:
        assert support.wait_until(lambda: cache.meta().get("seq") == "1", 10)
        before = (cache.count(), cache.meta())
        central.publish_raw(support.central_topics().manifests, make(central))
        assert service.downlink is not None
        assert support.wait_until(lambda: service.downlink.counts[f"rejected:{code}"] == 1, 10), \
            dict(service.downlink.counts)
        assert (cache.count(), cache.meta()) == before
        assert any(code in r.getMessage() and "rejected" in r.getMessage() for r in caplog.records)
        if alarm:
            assert central.wait_for(SITE, 1, 10, kind="alarm")
            body = central.messages(SITE, "alarm")[0]["body"]
            assert body["alarm"] == f"SYNC_{code}"
        # the client keeps running: the next good batch is applied
        central.sites[SITE].manifest_seq = 1
        central.sites[SITE].version = 1
        central.publish_manifests(SITE, data.generate(3, seed=8, start=100))
        assert support.wait_until(lambda: cache.meta().get("seq") == "2", 10)
        assert cache.count() == 8
    finally:
        cache.close()


def test_redelivered_batch_is_ignored_quietly(service: SyncService, central: CentralSim,
                                              config: GateEdgeConfig) -> None:
    body = central.publish_manifests(SITE, data.generate(4))
    cache = ManifestCache.open(config.storage.cache_path, readonly=True)
    try:
        assert support.wait_until(lambda: cache.meta().get("seq") == "1", 10)
        # a QoS 1 redelivery carries the very same signed bytes
        central.publish_raw(support.central_topics().manifests, _signed(central, body))
        assert service.downlink is not None
        assert support.wait_until(lambda: service.downlink.counts["duplicate"] == 1, 10)
        assert cache.count() == 4
    finally:
        cache.close()
    assert central.report()["sites"][SITE]["by_kind"].get("alarm", 0) == 0


def test_older_batch_after_newer_is_out_of_order(service: SyncService, central: CentralSim,
                                                 config: GateEdgeConfig) -> None:
    old = central.publish_manifests(SITE, data.generate(2, seed=1))
    central.publish_manifests(SITE, data.generate(2, seed=2, start=50))
    cache = ManifestCache.open(config.storage.cache_path, readonly=True)
    try:
        assert support.wait_until(lambda: cache.meta().get("seq") == "2", 10)
        central.publish_raw(support.central_topics().manifests, _signed(central, old))
        assert service.downlink is not None
        assert support.wait_until(lambda: service.downlink.counts["rejected:OUT_OF_ORDER"] == 1, 10)
        assert cache.meta().get("seq") == "2"
    finally:
        cache.close()


def test_key_rotation_accepts_both_configured_keys(tmp_path: Path, broker, keys: support.Keys,  # type: ignore[no-untyped-def]
                                                   central: CentralSim) -> None:
    new = Ed25519PrivateKey.generate()
    from edge.sync.signing import public_b64
    cfg_path = support.write_config(tmp_path, [broker.port], keys)
    text = cfg_path.read_text().replace(
        "  central_keys:\n",
        f'  central_keys:\n    - {{id: central-2027, public_key: "{public_b64(new)}"}}\n')
    cfg_path.write_text(text)
    cfg = support.load(cfg_path)
    svc = SyncService(cfg)
    svc.start()
    try:
        assert svc.link is not None and svc.link.wait_connected(10)
        assert support.wait_start_snapshot(cfg)
        central.publish_manifests(SITE, data.generate(2))            # old key
        central.key, central.kid = new, "central-2027"                # rotated
        central.publish_manifests(SITE, data.generate(2, start=10))
        cache = ManifestCache.open(cfg.storage.cache_path, readonly=True)
        try:
            assert support.wait_until(lambda: cache.meta().get("seq") == "2", 10)
            assert cache.count() == 4
            assert cache.meta()["source"] == "mqtt:central-2027"
        finally:
            cache.close()
    finally:
        svc.stop()


def test_seq_gap_requests_a_snapshot_that_replaces_the_cache(
        tmp_path: Path, broker, keys: support.Keys, config: GateEdgeConfig) -> None:  # type: ignore[no-untyped-def]
    sim = support.central_sim([broker.port], keys, snapshot_part_size=7).start()
    svc = SyncService(config)
    svc.start()
    cache = ManifestCache.open(config.storage.cache_path, readonly=True)
    try:
        assert svc.link is not None and svc.link.wait_connected(10)
        assert support.wait_start_snapshot(config)
        assert sim.report()["sites"][SITE]["resync_requests"] == 1   # the empty cache's own
        sim.publish_manifests(SITE, data.generate(5, seed=1))
        assert support.wait_until(lambda: cache.meta().get("seq") == "1", 10)
        sim.publish_manifests(SITE, data.generate(10, seed=2, start=100), lose=True)   # seq 2 lost
        sim.publish_hotlist(SITE, [{"kind": "plate", "value": "29C-111.11", "reason": "x",
                                    "action": "hold"}])
        sim.publish_manifests(SITE, data.generate(5, seed=3, start=200))             # seq 3: gap
        assert support.wait_until(lambda: cache.meta().get("seq") == "3", 15), cache.meta()
        assert sim.report()["sites"][SITE]["resync_requests"] == 2
        assert cache.count() == 20          # the lost batch arrived inside the snapshot (3 parts)
        assert cache.meta()["resync_pending"] == ""
        assert [e.value for e in cache.hotlist()] == ["29C11111"]
        # and the stream continues after the snapshot
        sim.publish_manifests(SITE, data.generate(1, seed=4, start=300))
        assert support.wait_until(lambda: cache.meta().get("seq") == "4", 10)
        assert svc.downlink is not None and svc.downlink.counts["gap"] >= 1
        assert support.wait_until(
            lambda: "snapshot" in {m["body"].get("ack") for m in sim.messages(SITE, "ack")}, 10)
    finally:
        cache.close()
        svc.stop()
        sim.stop()
