"""Malformed down messages beyond the broker test's catalogue: each is refused with its own code,
the cache is untouched, an alarm is queued (where it matters) and the next good batch applies.

No broker needed: ``Downlink.handle`` is exactly what the MQTT thread calls per message; the
broker path for the common classes is tests/edge/sync/test_downlink_rejections.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.store import outbox
from edge.store.cache import ManifestCache
from edge.store.records import Records
from edge.sync.downlink import Downlink
from edge.sync.journal import SyncJournal
from edge.sync.signing import KeyRing, sign, sign_bytes
from edge.sync.topics import Topics
from simulators.central import data

SITE = "HUUNGHI"
KEY = Ed25519PrivateKey.generate()
TOPICS = Topics(SITE)
NOW = datetime.now(UTC)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[ManifestCache, Records]]:
    cache, records = ManifestCache.open(tmp_path / "cache.db"), Records.open(tmp_path / "records.db")
    yield cache, records
    cache.close()
    records.close()


def _signed(body: dict[str, Any]) -> bytes:
    return sign_bytes(body, KEY, "c")


def _batch(**over: Any) -> dict[str, Any]:
    return {"type": "manifests", "site": SITE, "seq": 1, "version": 1,
            "signed_at": NOW.isoformat(), "items": data.generate(2, seed=3), **over}


def _hotlist(**over: Any) -> dict[str, Any]:
    return {"type": "hotlist", "site": SITE, "seq": 1, "version": 1,
            "signed_at": NOW.isoformat(), "items": [], "removed": [], **over}


def _command(**over: Any) -> dict[str, Any]:
    return {"type": "command", "site": SITE, "lane": "in-1", "command": "hold",
            "nonce": "nonce-00000001", "issued_at": NOW.isoformat(),
            "not_after": (NOW + timedelta(seconds=30)).isoformat(), **over}


def _duplicate_key_after_signing() -> bytes:
    doc = sign(_batch(), KEY, "c")
    text = json.dumps(doc)
    # a second "seq" member: json.loads keeps the last one, which was never signed
    return (text[:-1] + ', "seq": 7}').encode()


MANIFESTS, HOTLIST, SNAPSHOT = TOPICS.manifests, TOPICS.hotlist, TOPICS.snapshot
COMMAND = TOPICS.command("in-1")
CASES: list[tuple[str, str, bytes, str]] = [
    ("empty payload", MANIFESTS, b"", "MALFORMED_JSON"),
    ("not UTF-8", MANIFESTS, b'{"type": "\xff\xfe"}', "MALFORMED_JSON"),
    ("deeply nested JSON", MANIFESTS, b"[" * 20000 + b"]" * 20000, "MALFORMED_JSON"),
    ("deeply nested inside an object", MANIFESTS,
     b'{"items": ' + b"[" * 20000 + b"]" * 20000 + b"}", "MALFORMED_JSON"),
    ("duplicate key added after signing", MANIFESTS, _duplicate_key_after_signing(),
     "BAD_SIGNATURE"),
    ("sig not base64", MANIFESTS, json.dumps({**_batch(), "kid": "c", "sig": "***"}).encode(),
     "BAD_SIGNATURE"),
    ("kid not a string", MANIFESTS, json.dumps({**_batch(), "kid": 7, "sig": "AA=="}).encode(),
     "UNSIGNED"),
    ("seq as text", MANIFESTS, _signed(_batch(seq="1")), "INVALID_BATCH"),
    ("seq as boolean", MANIFESTS, _signed(_batch(seq=True)), "INVALID_BATCH"),
    ("seq zero", MANIFESTS, _signed(_batch(seq=0)), "INVALID_BATCH"),
    ("seq as float", MANIFESTS, _signed(_batch(seq=1.5)), "INVALID_BATCH"),
    ("version negative", MANIFESTS, _signed(_batch(version=-1)), "INVALID_BATCH"),
    ("items not a list", MANIFESTS, _signed(_batch(items={"a": 1})), "INVALID_BATCH"),
    ("item not an object", MANIFESTS, _signed(_batch(items=["105123456780"])), "INVALID_BATCH"),
    ("signed_at without offset", MANIFESTS, _signed(_batch(signed_at="2026-11-23T08:00:00")),
     "INVALID_BATCH"),
    ("signed_at not a time", MANIFESTS, _signed(_batch(signed_at="yesterday")), "INVALID_BATCH"),
    ("type missing", MANIFESTS, _signed({k: v for k, v in _batch().items() if k != "type"}),
     "WRONG_TYPE"),
    ("site missing", MANIFESTS, _signed({k: v for k, v in _batch().items() if k != "site"}),
     "WRONG_SITE"),
    ("hotlist removal without kind", HOTLIST, _signed(_hotlist(removed=[{"value": "X"}])),
     "INVALID_BATCH"),
    ("hotlist removal of unknown kind", HOTLIST,
     _signed(_hotlist(removed=[{"kind": "boat", "value": "X"}])), "INVALID_BATCH"),
    ("hotlist entry with unknown action", HOTLIST, _signed(_hotlist(items=[{
        "kind": "plate", "value": "29C12345", "reason": "x", "action": "shoot"}])),
     "INVALID_BATCH"),
    ("snapshot part beyond parts", SNAPSHOT, _signed({
        "type": "snapshot", "site": SITE, "snapshot_id": "S1", "part": 3, "parts": 2, "seq": 5,
        "hotlist_seq": 0, "version": 5, "hotlist_version": 0, "signed_at": NOW.isoformat(),
        "manifests": [], "hotlist": []}), "INVALID_BATCH"),
    ("snapshot without id", SNAPSHOT, _signed({
        "type": "snapshot", "site": SITE, "part": 1, "parts": 1, "seq": 5, "hotlist_seq": 0,
        "version": 5, "hotlist_version": 0, "signed_at": NOW.isoformat(), "manifests": [],
        "hotlist": []}), "INVALID_BATCH"),
    ("snapshot manifests not a list", SNAPSHOT, _signed({
        "type": "snapshot", "site": SITE, "snapshot_id": "S1", "part": 1, "parts": 1, "seq": 5,
        "hotlist_seq": 0, "version": 5, "hotlist_version": 0, "signed_at": NOW.isoformat(),
        "manifests": "all of them", "hotlist": []}), "INVALID_BATCH"),
    ("command nonce too short", COMMAND, _signed(_command(nonce="n1")), "INVALID_COMMAND"),
    ("command nonce not a string", COMMAND, _signed(_command(nonce=12345678)),
     "INVALID_COMMAND"),
    ("command mode unknown", COMMAND, _signed(_command(command="mode", mode="party")),
     "INVALID_COMMAND"),
    ("command not_after without offset", COMMAND,
     _signed(_command(not_after="2026-11-23T08:00:00")), "INVALID_BATCH"),
    ("command issued far in the future", COMMAND, _signed(_command(
        issued_at=(NOW + timedelta(hours=2)).isoformat(),
        not_after=(NOW + timedelta(hours=2, seconds=30)).isoformat())), "SIGNED_IN_FUTURE"),
    ("command on a topic with extra levels", f"{COMMAND}/x", _signed(_command()), "WRONG_TOPIC"),
]


@pytest.mark.parametrize(("label", "topic", "payload", "code"), CASES, ids=[c[0] for c in CASES])
def test_malformed_down_message_is_refused_by_name(
        label: str, topic: str, payload: bytes, code: str,
        stores: tuple[ManifestCache, Records]) -> None:
    cache, records = stores
    delivered: list[Any] = []
    downlink = Downlink(topics=TOPICS, keys=KeyRing({"c": KEY.public_key()}), cache=cache,
                        journal=SyncJournal(records, TOPICS, alarm_interval_s=0),
                        lanes={"in-1"}, on_command=delivered.append)
    before = (cache.count(), cache.meta(), len(cache.hotlist()))
    result = downlink.handle(topic, payload)
    assert (result.status, result.code) == ("rejected", code), result
    assert result.message
    assert (cache.count(), cache.meta(), len(cache.hotlist())) == before
    assert delivered == []
    alarms = [a.payload["alarm"] for a in outbox.pending(records.db) if a.kind == "alarm"]
    if code not in ("WRONG_TOPIC",):
        assert alarms == [f"SYNC_{code}"]
    # the downlink is still in service: the next good batch applies
    assert downlink.handle(MANIFESTS, _signed(_batch(seq=1, items=data.generate(
        1, seed=9, start=500)))).status == "applied"
