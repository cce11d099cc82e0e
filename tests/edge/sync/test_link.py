"""The MQTT link against real brokers: refused CONNACK, failover, mutual TLS, back-off."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest

from edge.sync.link import Broker, LinkSettings, LinkState, MqttLink, TlsFiles, backoff_delay
from simulators.central.broker import Mosquitto, free_port
from tests.edge.sync import support

pytestmark = pytest.mark.mqtt


def test_backoff_is_jittered_and_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(a, 1.0, 60.0, rng) for a in range(12)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1])
    assert all(30.0 <= d <= 60.0 for d in delays[7:])           # capped at 60 s
    assert len({round(d, 6) for d in delays}) == len(delays)    # jitter: no two equal


def test_refused_connack_is_never_marked_connected(tmp_path: Path) -> None:
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "edge", "right-password"],
                   check=True, capture_output=True)
    pwfile.chmod(0o600)
    extra = f"password_file {pwfile}\n"
    with Mosquitto(tmp_path / "auth", extra=extra) as mosq:
        # allow_anonymous true is overridden per listener only when a password file is given
        wrong = MqttLink(LinkSettings(client_id="edge-wrong", brokers=[Broker("127.0.0.1", mosq.port)],
                                      username="edge", password="wrong", backoff_min_s=0.1,
                                      backoff_max_s=0.3))
        wrong.start()
        try:
            assert support.wait_until(lambda: "refused" in wrong.last_error, 10), wrong.last_error
            assert "Bad user name or password" in wrong.last_error or "Not authorized" in wrong.last_error
            time.sleep(0.5)
            assert not wrong.connected.is_set()
            assert wrong.connects == 0
        finally:
            wrong.stop()
        right = MqttLink(LinkSettings(client_id="edge-right", brokers=[Broker("127.0.0.1", mosq.port)],
                                      username="edge", password="right-password"))
        right.start()
        try:
            assert right.wait_connected(10)
            assert right.state is LinkState.CONNECTED
        finally:
            right.stop()


def test_failover_walks_the_broker_list(tmp_path: Path) -> None:
    dead = free_port()
    with Mosquitto(tmp_path / "a", name="a") as a, Mosquitto(tmp_path / "b", name="b") as b:
        link = MqttLink(LinkSettings(client_id="edge-fo", brokers=[
            Broker("127.0.0.1", dead), Broker("127.0.0.1", a.port), Broker("127.0.0.1", b.port)],
            backoff_min_s=0.05, backoff_max_s=0.2, connect_timeout_s=2))
        link.start()
        try:
            assert link.wait_connected(10)
            assert link.broker is not None and link.broker.port == a.port
            a.stop()
            assert support.wait_until(lambda: link.connected.is_set() and link.broker is not None
                                      and link.broker.port == b.port, 15), link.last_error
        finally:
            link.stop()


def test_mutual_tls_with_client_certificate(tmp_path: Path) -> None:
    pki = support.make_pki(tmp_path / "pki", ["gate-edge-HUUNGHI"])
    files = {"ca.pem": pki["ca.pem"], "srv.pem": pki["server.pem"], "srv.key": pki["server.key"],
             "cli.pem": pki["gate-edge-HUUNGHI.pem"], "cli.key": pki["gate-edge-HUUNGHI.key"]}
    port = free_port()
    mosq = Mosquitto(tmp_path / "tls", port=free_port())
    # one plain listener for the readiness probe, one TLS listener that demands a certificate
    mosq.extra = (f"listener {port} 127.0.0.1\ncafile {files['ca.pem']}\ncertfile {files['srv.pem']}\n"
                  f"keyfile {files['srv.key']}\nrequire_certificate true\n"
                  "use_identity_as_username true\n")
    with mosq:
        good = MqttLink(LinkSettings(client_id="edge-tls", brokers=[Broker("127.0.0.1", port, tls=True)],
                                     tls=TlsFiles(files["ca.pem"], files["cli.pem"], files["cli.key"])))
        good.start()
        try:
            assert good.wait_connected(10), good.last_error
        finally:
            good.stop()
        anonymous = MqttLink(LinkSettings(
            client_id="edge-nocert", brokers=[Broker("127.0.0.1", port, tls=True)],
            tls=TlsFiles(files["ca.pem"]), backoff_min_s=0.1, backoff_max_s=0.3))
        anonymous.start()
        try:
            assert support.wait_until(lambda: anonymous.last_error != "", 10)
            assert not anonymous.connected.is_set()
        finally:
            anonymous.stop()
