"""Downlink and journal logic without a broker (real SQLite files): the paths a broker test
cannot reach cheaply — foreign topics, stale snapshots, alarm rate limiting, config secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from edge.config.mqtt import MqttConfig, TlsConfig, credential_path
from edge.store import outbox
from edge.store.cache import ManifestCache
from edge.store.records import Records
from edge.sync.downlink import Downlink
from edge.sync.journal import SyncJournal
from edge.sync.signing import KeyRing, sign_bytes
from edge.sync.topics import Topics
from simulators.central import data

SITE = "HUUNGHI"
KEY = Ed25519PrivateKey.generate()
TOPICS = Topics(SITE)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[ManifestCache, Records]]:
    cache, records = ManifestCache.open(tmp_path / "cache.db"), Records.open(tmp_path / "records.db")
    yield cache, records
    cache.close()
    records.close()


def _downlink(stores: tuple[ManifestCache, Records], interval: float = 0.0) -> tuple[Downlink, list[str]]:
    resyncs: list[str] = []
    cache, records = stores
    return Downlink(topics=TOPICS, keys=KeyRing({"c": KEY.public_key()}), cache=cache,
                    journal=SyncJournal(records, TOPICS, alarm_interval_s=interval), lanes={"in-1"},
                    request_resync=resyncs.append), resyncs


def _signed(body: dict) -> bytes:
    return sign_bytes(body, KEY, "c")


def _batch(seq: int, n: int = 2) -> bytes:
    return _signed({"type": "manifests", "site": SITE, "seq": seq, "version": seq,
                    "signed_at": datetime.now(UTC).isoformat(), "items": data.generate(n, seed=seq,
                                                                                       start=seq * 10)})


def _snapshot(seq: int, *, part: int = 1, parts: int = 1, sid: str = "S1",
              version: int | None = None) -> bytes:
    return _signed({"type": "snapshot", "site": SITE, "snapshot_id": sid, "part": part, "parts": parts,
                    "seq": seq, "hotlist_seq": 0, "version": seq if version is None else version,
                    "hotlist_version": 0, "signed_at": datetime.now(UTC).isoformat(),
                    "manifests": data.generate(3, seed=part, start=part * 100), "hotlist": []})


def test_foreign_topic_is_rejected_without_alarm(stores: tuple[ManifestCache, Records]) -> None:
    downlink, _ = _downlink(stores)
    result = downlink.handle("customs/v1/LAOBAO/manifests", _batch(1))
    assert (result.status, result.code) == ("rejected", "WRONG_TOPIC")
    assert outbox.depth(stores[1].db) == 0


def test_snapshot_older_than_cache_or_unrequested_is_refused(stores: tuple[ManifestCache, Records]) -> None:
    downlink, _ = _downlink(stores)
    for seq in (1, 2, 3):
        assert downlink.handle(TOPICS.manifests, _batch(seq)).status == "applied"
    assert downlink.handle(TOPICS.snapshot, _snapshot(2)).code == "OUT_OF_ORDER"     # older
    assert downlink.handle(TOPICS.snapshot, _snapshot(3)).code == "OUT_OF_ORDER"     # not asked for
    assert stores[0].count() == 6
    # a newer snapshot is taken even unasked (the centre rebuilt its state)
    assert downlink.handle(TOPICS.snapshot, _snapshot(5)).status == "applied"
    assert stores[0].count() == 3 and stores[0].meta()["seq"] == "5"


def test_snapshot_parts_must_agree(stores: tuple[ManifestCache, Records]) -> None:
    downlink, _ = _downlink(stores)
    assert downlink.handle(TOPICS.snapshot, _snapshot(4, part=1, parts=2)).status == "staged"
    bad = downlink.handle(TOPICS.snapshot, _snapshot(4, part=2, parts=2, version=9))
    assert (bad.status, bad.code) == ("rejected", "INVALID_BATCH")
    assert stores[0].count() == 0
    assert downlink.handle(TOPICS.snapshot, _snapshot(4, part=1, parts=2, sid="S2")).status == "staged"
    assert downlink.handle(TOPICS.snapshot, _snapshot(4, part=2, parts=2, sid="S2")).status == "applied"
    assert stores[0].count() == 6


def test_gap_requests_resync_once_per_gap_and_keeps_cache(stores: tuple[ManifestCache, Records]) -> None:
    downlink, resyncs = _downlink(stores)
    downlink.handle(TOPICS.manifests, _batch(1))
    assert downlink.handle(TOPICS.manifests, _batch(3)).status == "gap"
    assert len(resyncs) == 1 and "1 batch(es) missing" in resyncs[0]
    assert stores[0].meta()["seq"] == "1" and stores[0].count() == 2


def test_alarms_are_rate_limited_per_reason_and_count_suppressed(
        stores: tuple[ManifestCache, Records]) -> None:
    downlink, _ = _downlink(stores, interval=3600)
    for _ in range(5):
        downlink.handle(TOPICS.manifests, b"{broken")
    downlink.handle(TOPICS.manifests, b"[]")
    downlink.handle(TOPICS.manifests, json.dumps({"type": "manifests"}).encode())   # unsigned
    alarms = [i for i in outbox.pending(stores[1].db) if i.kind == "alarm"]
    assert [a.payload["alarm"] for a in alarms] == ["SYNC_MALFORMED_JSON", "SYNC_UNSIGNED"]
    assert downlink.counts["rejected:MALFORMED_JSON"] == 6
    audit = stores[1].db.execute("SELECT action, reason_code FROM audit ORDER BY id").fetchall()
    assert audit == [("alarm.raised", "SYNC_MALFORMED_JSON"), ("alarm.raised", "SYNC_UNSIGNED")]


def test_secrets_come_from_the_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "site-signing.key").write_text("x")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert credential_path(Path("site-signing.key")) == tmp_path / "site-signing.key"
    assert credential_path(Path("/etc/abs.key")) == Path("/etc/abs.key")
    with pytest.raises(ValidationError, match="both cert_file and key_file"):
        TlsConfig(cert_file=Path("a.pem"))
    with pytest.raises(ValidationError, match="backoff_max"):
        MqttConfig(backoff_min="10s", backoff_max="1s")  # type: ignore[arg-type]
