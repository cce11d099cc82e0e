"""The sync attacked as someone on the site broker would: replays of old signed messages,
key confusion, keys rotated out, and secrets leaking into logs while keys load and the link runs.

Real SQLite files throughout; the rotated-out key and the log test go through a real Mosquitto.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.config import GateEdgeConfig
from edge.store import outbox
from edge.store.cache import ManifestCache
from edge.store.records import Records
from edge.sync.downlink import Downlink
from edge.sync.journal import SyncJournal
from edge.sync.service import SyncService
from edge.sync.signing import KeyRing, load_private_key, sign, sign_bytes
from edge.sync.topics import Topics
from simulators.central import data
from simulators.central.broker import Mosquitto
from simulators.central.central import CentralSim
from tests.edge.sync import support

SITE = support.SITE
OLD, NEW = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
TOPICS = Topics(SITE)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[ManifestCache, Records]]:
    cache, records = ManifestCache.open(tmp_path / "cache.db"), Records.open(tmp_path / "records.db")
    yield cache, records
    cache.close()
    records.close()


def _downlink(stores: tuple[ManifestCache, Records], ring: KeyRing | None = None) -> Downlink:
    cache, records = stores
    return Downlink(topics=TOPICS, keys=ring or KeyRing({"old": OLD.public_key(),
                                                         "new": NEW.public_key()}),
                    cache=cache, journal=SyncJournal(records, TOPICS, alarm_interval_s=0),
                    lanes={"in-1", "in-2"})


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _hotlist(seq: int, items: list[dict[str, str]], removed: list[dict[str, str]] | None = None
             ) -> bytes:
    return sign_bytes({"type": "hotlist", "site": SITE, "seq": seq, "version": seq,
                       "signed_at": _now(), "items": items, "removed": removed or []}, NEW, "new")


def _manifests(seq: int) -> bytes:
    return sign_bytes({"type": "manifests", "site": SITE, "seq": seq, "version": seq,
                       "signed_at": _now(), "items": data.generate(2, seed=seq, start=seq * 10)},
                      NEW, "new")


def _snapshot(seq: int, hotlist_seq: int, hotlist: list[dict[str, str]]) -> bytes:
    return sign_bytes({"type": "snapshot", "site": SITE, "snapshot_id": f"S{seq}-{hotlist_seq}",
                       "part": 1, "parts": 1, "seq": seq, "hotlist_seq": hotlist_seq,
                       "version": seq, "hotlist_version": hotlist_seq, "signed_at": _now(),
                       "manifests": data.generate(2, seed=seq, start=seq * 10),
                       "hotlist": hotlist}, NEW, "new")


WANTED = {"kind": "plate", "value": "29C12345", "reason": "smuggling alert", "action": "hold"}


def test_replayed_old_snapshot_cannot_roll_back_the_hotlist(
        stores: tuple[ManifestCache, Records]) -> None:
    """An old, validly signed snapshot replayed when the manifest stream has not moved would
    wipe every hotlist entry added since: a truck on the hotlist would get through."""
    downlink = _downlink(stores)
    cache = stores[0]
    assert downlink.handle(TOPICS.manifests, _manifests(1)).status == "applied"
    old_snapshot = _snapshot(2, 0, [])                     # recorded by the attacker
    assert downlink.handle(TOPICS.snapshot, old_snapshot).status == "applied"
    assert downlink.handle(TOPICS.hotlist, _hotlist(1, [WANTED])).status == "applied"
    assert [e.value for e in cache.hotlist()] == ["29C12345"]
    # a resync is pending (e.g. the attacker dropped a batch to cause a gap) ...
    cache.set_meta(resync_pending="1")
    result = downlink.handle(TOPICS.snapshot, old_snapshot)
    assert (result.status, result.code) == ("rejected", "OUT_OF_ORDER")
    assert [e.value for e in cache.hotlist()] == ["29C12345"]
    assert cache.meta()["hotlist_seq"] == "1"
    # ... and a newer snapshot of the manifests but with an older hotlist is refused as well
    result = downlink.handle(TOPICS.snapshot, _snapshot(3, 0, []))
    assert (result.status, result.code) == ("rejected", "OUT_OF_ORDER")
    assert [e.value for e in cache.hotlist()] == ["29C12345"]
    # the genuine answer (current hotlist position) is taken
    assert downlink.handle(TOPICS.snapshot, _snapshot(3, 1, [WANTED])).status == "applied"
    assert [e.value for e in cache.hotlist()] == ["29C12345"]


def test_replayed_hotlist_removal_is_refused(stores: tuple[ManifestCache, Records]) -> None:
    """Replaying the batch that once removed an entry must not remove it again after re-adding."""
    downlink = _downlink(stores)
    cache = stores[0]
    downlink.handle(TOPICS.hotlist, _hotlist(1, [WANTED]))
    removal = _hotlist(2, [], [{"kind": "plate", "value": "29C12345"}])
    assert downlink.handle(TOPICS.hotlist, removal).status == "applied"
    assert downlink.handle(TOPICS.hotlist, _hotlist(3, [WANTED])).status == "applied"
    result = downlink.handle(TOPICS.hotlist, removal)
    assert (result.status, result.code) == ("rejected", "OUT_OF_ORDER")
    assert [e.value for e in cache.hotlist()] == ["29C12345"]


def test_key_confusion_and_signature_stripping(stores: tuple[ManifestCache, Records]) -> None:
    downlink = _downlink(stores)
    body = {"type": "manifests", "site": SITE, "seq": 1, "version": 1, "signed_at": _now(),
            "items": data.generate(2, seed=1)}
    signed = sign(body, OLD, "old")
    cases = {
        # the old key's signature presented under the new key's id
        "BAD_SIGNATURE": {**signed, "kid": "new"},
        "UNSIGNED": {k: v for k, v in signed.items() if k != "sig"},
        "UNKNOWN_KEY": sign(body, Ed25519PrivateKey.generate(), "centre-2099"),
    }
    # a member added after signing, and a signature of the right length made of zeros
    cases["BAD_SIGNATURE "] = {**signed, "items": signed["items"] + data.generate(1, seed=5)}
    cases["BAD_SIGNATURE  "] = {**signed, "sig": base64.b64encode(bytes(64)).decode()}
    for code, doc in cases.items():
        result = downlink.handle(TOPICS.manifests, json.dumps(doc).encode())
        assert (result.status, result.code) == ("rejected", code.strip()), code
    assert stores[0].count() == 0
    alarms = [a.payload["alarm"] for a in outbox.pending(stores[1].db) if a.kind == "alarm"]
    assert set(alarms) == {"SYNC_BAD_SIGNATURE", "SYNC_UNSIGNED", "SYNC_UNKNOWN_KEY"}
    # members reordered by a bridge still verify (canonical JSON), so this is not a rejection
    reordered = json.dumps(dict(reversed(list(signed.items())))).encode()
    assert downlink.handle(TOPICS.manifests, reordered).status == "applied"


def test_command_replayed_on_another_lane_or_as_a_batch(
        stores: tuple[ManifestCache, Records]) -> None:
    downlink = _downlink(stores)
    now = datetime.now(UTC)
    command = sign_bytes({"type": "command", "site": SITE, "lane": "in-1", "command": "open",
                          "nonce": "n-0000000001", "issued_at": now.isoformat(),
                          "not_after": (now + timedelta(seconds=30)).isoformat()}, NEW, "new")
    assert downlink.handle(TOPICS.command("in-2"), command).code == "WRONG_LANE"
    assert downlink.handle(TOPICS.manifests, command).code == "WRONG_TYPE"
    assert downlink.handle(TOPICS.command("in-1"), command).status == "command"
    assert downlink.handle(TOPICS.command("in-1"), command).code == "REPLAYED"


def test_rotated_out_key_is_refused_over_the_broker(tmp_path: Path, broker: Mosquitto,
                                                   keys: support.Keys,
                                                   central: CentralSim) -> None:
    """After rotation the old key is removed from central_keys: its batches are refused."""
    from edge.sync.signing import public_b64

    cfg_path = support.write_config(tmp_path, [broker.port], keys)
    text = cfg_path.read_text().replace(
        f'    - {{id: {support.CENTRAL_KID}, public_key: "{keys.central_pub}"}}\n',
        f'    - {{id: central-2027, public_key: "{public_b64(NEW)}"}}\n')
    assert text != cfg_path.read_text()
    cfg_path.write_text(text)
    cfg = support.load(cfg_path)
    svc = SyncService(cfg)
    svc.start()
    try:
        assert svc.link is not None and svc.link.wait_connected(10)
        central.publish_manifests(SITE, data.generate(2))             # still signs with the old
        downlink = svc.downlink
        assert downlink is not None
        # the batch, and the snapshot the empty cache asked for at start: both old-key signed
        assert support.wait_until(lambda: downlink.counts["rejected:UNKNOWN_KEY"] >= 2, 10)
        assert central.wait_for(SITE, 1, 10, kind="alarm")
        assert central.messages(SITE, "alarm")[0]["body"]["alarm"] == "SYNC_UNKNOWN_KEY"
        central.key, central.kid = NEW, "central-2027"
        central.sites[SITE].manifest_seq = 0
        central.publish_manifests(SITE, data.generate(2, start=10))
        cache = ManifestCache.open(cfg.storage.cache_path, readonly=True)
        try:
            assert support.wait_until(lambda: cache.meta().get("seq") == "1", 10)
            assert cache.meta()["source"] == "mqtt:central-2027"
        finally:
            cache.close()
    finally:
        svc.stop()


def test_no_secret_in_the_logs_while_keys_load_and_the_link_runs(
        tmp_path: Path, broker: Mosquitto, keys: support.Keys, central: CentralSim,
        caplog: pytest.LogCaptureFixture) -> None:
    password = "broker-pass-Zq81-secret"
    (tmp_path / "broker.pass").write_text(password + "\n", encoding="utf-8")
    cfg_path = support.write_config(tmp_path, [broker.port], keys, extra_mqtt=(
        f"  username: huunghi\n  password_file: {tmp_path / 'broker.pass'}\n"))
    cfg: GateEdgeConfig = support.load(cfg_path)
    caplog.set_level(logging.DEBUG)
    svc = SyncService(cfg)
    svc.start()
    try:
        assert svc.link is not None and svc.link.wait_connected(10)
        central.publish_manifests(SITE, data.generate(2))
        central.publish_raw(TOPICS.manifests, b'{"type": "manifests", "sig": "AAAA"}')
        support.save_passages(cfg.storage.records_path, 2)
        assert central.wait_for(SITE, 2, 15, kind="passage")
        downlink = svc.downlink
        assert downlink is not None
        assert support.wait_until(lambda: downlink.counts["rejected:UNSIGNED"] == 1, 10)
    finally:
        svc.stop()
    # a damaged key file: the error names the file, not its content
    broken = tmp_path / "broken.key"
    pem = keys.site_key.read_text(encoding="ascii")
    broken.write_text(pem.replace("A", "B", 3), encoding="ascii")
    with pytest.raises(ValueError) as err:
        load_private_key(broken)
    pem_body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "connected to" in logged                                  # the logs were captured
    for secret in (password, pem_body, pem_body[:24], keys.central_key.read_text()):
        assert secret not in logged
        assert secret not in str(err.value)
    records = Records.open(cfg.storage.records_path, readonly=True)
    try:
        trail = "\n".join(str(r) for r in records.db.execute("SELECT * FROM audit"))
        queued = "\n".join(str(r) for r in records.db.execute("SELECT * FROM outbox"))
    finally:
        records.close()
    for secret in (password, pem_body[:24]):
        assert secret not in trail and secret not in queued
