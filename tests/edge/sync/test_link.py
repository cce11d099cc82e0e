"""The MQTT link against real brokers: refused CONNACK, failover, mutual TLS, back-off."""

from __future__ import annotations

import random
import socket
import subprocess
import threading
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


def test_refused_subscription_is_never_ready_and_fails_over(tmp_path: Path) -> None:
    """A broker that refuses one of the site's subscriptions (SUBACK 0x87, e.g. an ACL that lacks
    the command topics) would leave the link deaf to commands: it is never counted ready there,
    and the link fails over to the next broker."""
    subs = [("customs/v1/HUUNGHI/manifests", 1), ("customs/v1/HUUNGHI/commands/+", 1)]
    with _RefusingBroker("commands") as strict, Mosquitto(tmp_path / "open", name="open") as good:
        link = MqttLink(LinkSettings(
            client_id="edge-acl", brokers=[Broker("127.0.0.1", strict.port),
                                           Broker("127.0.0.1", good.port)],
            subscriptions=subs, backoff_min_s=0.05, backoff_max_s=0.2))
        ready_on: list[int | None] = []
        link.add_state_listener(lambda up: ready_on.append(link.broker.port if link.broker else None)
                                if up else None)
        link.start()
        try:
            assert link.wait_connected(10), link.last_error
            assert link.broker is not None and link.broker.port == good.port
            assert strict.refused >= 1
            assert ready_on == [good.port]                     # never "ready" on the strict one
            assert "commands/+ refused" in link.last_error and "0x87" in link.last_error
        finally:
            link.stop()


class _RefusingBroker:
    """Just enough of an MQTT 5 broker to accept CONNECT and refuse some SUBSCRIBEs.

    A stand-in because Mosquitto 2.0 grants every subscription and applies its ACL only when it
    delivers, so no real broker here answers a SUBACK with a failure code.
    """

    def __init__(self, refuse: str) -> None:
        self.refuse = refuse.encode()
        self.refused = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> _RefusingBroker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()
        self._thread.join(5)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    while (packet := _read_packet(conn)) is not None:
                        kind, body = packet
                        if kind == 0x10:                                   # CONNECT
                            conn.sendall(b"\x20\x03\x00\x00\x00")       # CONNACK, success
                        elif kind == 0x80:                                 # SUBSCRIBE
                            codes = []
                            pos, (plen, n) = 2, _varint(body, 2)
                            pos += n + plen
                            while pos < len(body):
                                tlen = int.from_bytes(body[pos:pos + 2], "big")
                                topic = body[pos + 2:pos + 2 + tlen]
                                pos += 3 + tlen
                                codes.append(0x87 if self.refuse in topic else 0x01)
                                self.refused += self.refuse in topic
                            reply = body[:2] + b"\x00" + bytes(codes)
                            conn.sendall(bytes([0x90, len(reply)]) + reply)
                        elif kind == 0xC0:                                 # PINGREQ
                            conn.sendall(b"\xd0\x00")
                        elif kind == 0xE0:                                 # DISCONNECT
                            break
                except OSError:
                    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift, n = 0, 0, 0
    while True:
        byte = data[pos + n]
        value |= (byte & 0x7F) << shift
        n += 1
        if not byte & 0x80:
            return value, n
        shift += 7


def _read_packet(conn: socket.socket) -> tuple[int, bytes] | None:
    head = conn.recv(1)
    if not head:
        return None
    length, shift = 0, 0
    while True:
        byte = conn.recv(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = conn.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return head[0] & 0xF0, body
