"""The shipped Mosquitto configs, for real: checkpoint broker bridged over mutual TLS to a
central broker with per-site ACLs; gate-edge on one side, the central simulator on the other."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.store.cache import ManifestCache
from edge.sync.link import Broker, LinkSettings, MqttLink, TlsFiles
from edge.sync.service import SyncService
from simulators.central import data
from simulators.central.broker import Mosquitto, free_port, render_template
from tests.edge.sync import support

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
TEMPLATES = REPO / "config" / "mosquitto"
SITE = support.SITE


def test_site_broker_bridges_both_ways_to_the_central_broker(tmp_path: Path, keys: support.Keys) -> None:
    pki = support.make_pki(tmp_path / "pki", [SITE, "central", "LAOBAO"])
    central_port, site_port = free_port(), free_port()
    central_conf = render_template(
        TEMPLATES / "central.conf.template", LISTEN_ADDRESS="127.0.0.1", LISTEN_PORT=central_port,
        DATA_DIR=tmp_path / "central-data", CA_FILE=pki["ca.pem"], CERT_FILE=pki["server.pem"],
        KEY_FILE=pki["server.key"], ACL_FILE=TEMPLATES / "central.acl")
    site_conf = render_template(
        TEMPLATES / "site-bridge.conf.template", SITE=SITE, LISTEN_ADDRESS="127.0.0.1",
        LISTEN_PORT=site_port, DATA_DIR=tmp_path / "site-data",
        CENTRAL_ADDRESSES=f"127.0.0.1:{central_port}", CA_FILE=pki["ca.pem"],
        CERT_FILE=pki[f"{SITE}.pem"], KEY_FILE=pki[f"{SITE}.key"])
    (tmp_path / "central-data").mkdir()
    (tmp_path / "site-data").mkdir()
    central_tls = TlsFiles(pki["ca.pem"], pki["central.pem"], pki["central.key"])
    with Mosquitto(tmp_path, port=central_port, config=central_conf, name="central"), \
            Mosquitto(tmp_path, port=site_port, config=site_conf, name="site") as site_broker:
        sim = support.central_sim([central_port], keys, tls=central_tls).start()
        cfg = support.load(support.write_config(tmp_path, [site_broker.port], keys))
        svc = SyncService(cfg)
        svc.start()
        cache = ManifestCache.open(cfg.storage.cache_path, readonly=True)
        try:
            assert svc.link is not None and svc.link.wait_connected(10)
            # down: centre -> central broker -> bridge -> site broker -> gate-edge. Until the
            # bridge has subscribed centrally nobody receives, so repeat seq 1 until it is acked.
            items = data.generate(20)

            def delivered() -> bool:
                sim.sites[SITE].manifest_seq = sim.sites[SITE].version = 0
                sim.publish_manifests(SITE, items)
                return sim.wait_for(SITE, 1, 1.0, kind="ack")

            assert support.wait_until(delivered, 20), site_broker.log_text()
            assert support.wait_until(lambda: cache.count() == 20, 10)
            # up: gate-edge -> site broker -> bridge -> central broker -> centre
            ids = support.save_passages(cfg.storage.records_path, 50)
            svc.notify_outbox()
            assert sim.wait_for(SITE, 50, 20, kind="passage"), sim.report()
            assert [m["body"]["passage_id"] for m in sim.messages(SITE, "passage")] == ids
            # the ACL confines a checkpoint certificate to its own topics: LAOBAO's certificate
            # cannot publish as HUUNGHI (the centre never sees the message)
            intruder = MqttLink(LinkSettings(
                client_id="bridge-LAOBAO", brokers=[Broker("127.0.0.1", central_port, tls=True)],
                tls=TlsFiles(pki["ca.pem"], pki["LAOBAO.pem"], pki["LAOBAO.key"])))
            intruder.start()
            try:
                assert intruder.wait_connected(10)
                intruder.publish(f"edge/v1/{SITE}/passages", b'{"forged": true}', qos=1)
                intruder.publish("edge/v1/LAOBAO/passages", b'{"own": true}', qos=1)
                # its own topic is allowed: the centre receives and rejects it (no site key)
                assert support.wait_until(lambda: sim.rejected.get("UNKNOWN_SITE") == 1, 10)
                assert "MALFORMED_JSON" not in sim.rejected and "UNSIGNED" not in sim.rejected
            finally:
                intruder.stop()
        finally:
            cache.close()
            svc.stop()
            sim.stop()
