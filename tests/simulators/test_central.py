"""``gate-sim central``: the reference centre verifies, de-duplicates, finds gaps, answers resync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.store.cache import ManifestCache
from edge.sync.downlink import LaneCommand
from edge.sync.link import Broker, LinkSettings, MqttLink
from edge.sync.service import SyncService
from edge.sync.signing import KeyRing, load_private_key, load_public_key, sign_bytes
from edge.sync.topics import Topics
from simulators.central.broker import Mosquitto
from simulators.central.central import CentralSim
from tests.edge.sync import support

pytestmark = pytest.mark.mqtt
SITE = support.SITE
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def central(broker: Mosquitto, keys: support.Keys, tmp_path: Path) -> Iterator[CentralSim]:
    sim = support.central_sim([broker.port], keys, export_path=tmp_path / "received.jsonl",
                              snapshot_part_size=3).start()
    yield sim
    sim.stop()


@pytest.fixture
def edge_client(broker: Mosquitto) -> Iterator[MqttLink]:
    """A bare client playing the checkpoint, to send exactly the bytes a test wants."""
    got: list[tuple[str, bytes]] = []
    link = MqttLink(LinkSettings(client_id="fake-edge", brokers=[Broker("127.0.0.1", broker.port)],
                                 subscriptions=[(f"customs/v1/{SITE}/#", 1)]),
                    on_message=lambda t, p, m: got.append((t, p)))
    link.start()
    assert link.wait_connected(10)
    link.received = got  # type: ignore[attr-defined]
    yield link
    link.stop()


def _up(key: Ed25519PrivateKey, seq: int, kid: str = support.SITE_KID, site: str = SITE) -> bytes:
    return sign_bytes({"type": "passage", "site": site, "seq": seq,
                       "idempotency_key": f"passage:{seq}", "created_at": "2026-11-23T01:00:00+00:00",
                       "body": {"passage_id": f"P{seq}", "confidence": 0.93}}, key, kid)


def test_deduplicates_and_reports_gaps(central: CentralSim, edge_client: MqttLink, keys: support.Keys,
                                       tmp_path: Path) -> None:
    site_key = load_private_key(keys.site_key)
    topic = Topics(SITE).passages
    for seq in (1, 2, 2, 4, 5):
        edge_client.publish(topic, _up(site_key, seq))
    edge_client.publish(topic, _up(Ed25519PrivateKey.generate(), 6))               # forged
    edge_client.publish(topic, _up(site_key, 7, kid="LAOBAO-1"))                   # unknown kid
    edge_client.publish(topic, b"not json")
    assert support.wait_until(lambda: sum(central.report()["rejected"].values()) == 3, 10)
    report = central.report()["sites"][SITE]
    assert (report["received"], report["duplicates"], report["gaps"], report["max_seq"]) == (4, 1, [3], 5)
    assert central.report()["rejected"] == {"BAD_SIGNATURE": 1, "UNKNOWN_KEY": 1, "MALFORMED_JSON": 1}
    central.stop()
    exported = [json.loads(line) for line in (tmp_path / "received.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in exported] == [1, 2, 4, 5]
    assert all(e["site"] == SITE and e["topic"] == "passages" for e in exported)


def test_resync_is_answered_with_a_signed_snapshot_in_parts(central: CentralSim, edge_client: MqttLink,
                                                            keys: support.Keys) -> None:
    from simulators.central import data
    central.publish_manifests(SITE, data.generate(7))
    central.publish_hotlist(SITE, [{"kind": "plate", "value": "29C11111", "reason": "x"}])
    request = sign_bytes({"type": "resync", "site": SITE, "request_id": "R1", "reason": "gap",
                          "at": "2026-11-23T01:00:00+00:00", "have": {"seq": 0}},
                         load_private_key(keys.site_key), support.SITE_KID)
    edge_client.publish(Topics(SITE).resync, request)
    received = edge_client.received  # type: ignore[attr-defined]
    assert support.wait_until(lambda: sum(t.endswith("/snapshot") for t, _ in received) == 3, 10)
    ring = KeyRing({support.CENTRAL_KID: load_public_key(keys.central_pub)})
    parts = [json.loads(p) for t, p in received if t.endswith("/snapshot")]
    assert all(ring.verify(p) == support.CENTRAL_KID for p in parts)
    assert sorted(p["part"] for p in parts) == [1, 2, 3] and {p["parts"] for p in parts} == {3}
    assert sum(len(p["manifests"]) for p in parts) == 7
    assert {p["seq"] for p in parts} == {1} and {p["request_id"] for p in parts} == {"R1"}
    assert central.report()["sites"][SITE]["resync_requests"] == 1


def test_cli_publishes_a_file_and_reports(tmp_path: Path, broker: Mosquitto, keys: support.Keys) -> None:
    cfg = support.load(support.write_config(tmp_path, [broker.port], keys))
    commands: list[LaneCommand] = []
    svc = SyncService(cfg, on_command=commands.append)
    svc.start()
    try:
        assert svc.link is not None and svc.link.wait_connected(10)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        demo = REPO / "config/demo/manifests.jsonl"
        expected = sum(1 for line in demo.read_text().splitlines() if line.startswith("{"))
        proc = subprocess.Popen(
            [sys.executable, "-c", "from simulators.cli import main; main()", "central",
             "-b", f"127.0.0.1:{broker.port}", "-s", SITE, "--key", str(keys.central_key),
             "--kid", support.CENTRAL_KID,
             "--edge-key", f"{SITE}={support.SITE_KID}:{keys.site_key}.pub",
             "--manifests", str(demo), "--duration", "4", "--export", str(tmp_path / "out.jsonl"),
             "--command", "in-2=mode:manual"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            cache = ManifestCache.open(cfg.storage.cache_path, readonly=True)
            try:   # the centre is up once its batch arrived; now the checkpoint reports passages
                assert support.wait_until(lambda: cache.count() == expected, 15)
            finally:
                cache.close()
            support.save_passages(cfg.storage.records_path, 5)
            svc.notify_outbox()
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, stderr
        report = json.loads(stdout)
        site = report["sites"][SITE]
        assert site["by_kind"]["passage"] == 5 and site["gaps"] == [] and report["rejected"] == {}
        acks = {m["body"]["ack"]: m["body"] for m in map(json.loads, (tmp_path / "out.jsonl")
                                                           .read_text().splitlines())
                if m["type"] == "ack"}
        assert acks["manifests"]["seq"] == 1                # the edge acknowledged the batch
        assert acks["command"]["status"] == "accepted"      # and the lane command
        assert acks["snapshot"]["status"] == "applied"     # asked for at first connect
        assert site["by_kind"]["ack"] == 3
        assert [(c.lane, c.command, c.mode) for c in commands] == [("in-2", "mode", "manual")]
    finally:
        svc.stop()
