"""Building blocks of the sync tests: keys, a gate-edge config pointing at a real broker,
passages written the way the daemon writes them, and a central simulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.config import GateEdgeConfig, load_config
from edge.domain.model import Decision, Outcome, Passage, PassageReads, PlateRead
from edge.store.records import Records
from edge.sync.link import Broker
from edge.sync.signing import KeyRing, generate_key, load_private_key, load_public_key
from edge.sync.topics import Topics
from simulators.central.central import CentralSim

SITE = "HUUNGHI"
CENTRAL_KID = "central-2026"
SITE_KID = "HUUNGHI-2026"


@dataclass(frozen=True)
class Keys:
    central_key: Path
    central_pub: str
    site_key: Path
    site_pub: str


def make_keys(directory: Path) -> Keys:
    central = generate_key(directory / "central.key")
    site = generate_key(directory / "site.key")
    return Keys(central.private_path, central.public_b64, site.private_path, site.public_b64)


def write_config(directory: Path, ports: list[int], keys: Keys, *, extra_mqtt: str = "") -> Path:
    brokers = "\n".join(f"    - {{host: 127.0.0.1, port: {p}, tls: false}}" for p in ports)
    text = f"""
site: {{code: {SITE}, name: "Huu Nghi"}}
lanes:
  - {{id: in-1, direction: inbound}}
  - {{id: in-2, direction: inbound}}
storage: {{dir: {directory / 'var'}}}
mqtt:
  brokers:
{brokers}
  central_keys:
    - {{id: {CENTRAL_KID}, public_key: "{keys.central_pub}"}}
  site_key: {{id: {SITE_KID}, private_key_file: {keys.site_key}}}
  backoff_min: 0.1s
  backoff_max: 1s
  connect_timeout: 3s
  keepalive: 5s
  alarm_interval: 0s
  resync_timeout: 3s
{extra_mqtt}
"""
    path = directory / "gate-edge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path) -> GateEdgeConfig:
    return load_config(path)


def central_sim(ports: list[int], keys: Keys, **kwargs: object) -> CentralSim:
    ring = KeyRing({SITE_KID: load_public_key(keys.site_pub)})
    tls = kwargs.get("tls") is not None
    return CentralSim([Broker("127.0.0.1", p, tls=tls) for p in ports],
                      key=load_private_key(keys.central_key), kid=CENTRAL_KID,
                      edge_keys={SITE: ring}, **kwargs)  # type: ignore[arg-type]


def save_passages(records_path: Path, n: int, *, lane: str = "in-1", start: int = 0,
                  pause: float = 0.0) -> list[str]:
    """Write ``n`` decided passages through Records.save_passage (passage + outbox in one txn)."""
    records = Records.open(records_path)
    ids = []
    try:
        for i in range(start, start + n):
            plate = f"51C{i:05d}"
            reads = PassageReads(lane=lane, tractor=(PlateRead(lane=lane, text=plate, confidence=0.93),))
            passage = Passage(lane=lane, reads=reads, decision=Decision(outcome=Outcome.OPEN))
            records.save_passage(passage, publish_topic=Topics(SITE).passages)
            ids.append(passage.id)
            if pause:
                time.sleep(pause)
    finally:
        records.close()
    return ids


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def wait_start_snapshot(cfg: GateEdgeConfig, timeout: float = 10) -> bool:
    """A fresh checkpoint asks for a snapshot at its first connect: wait until it is in."""
    from edge.store.cache import ManifestCache

    def done() -> bool:
        cache = ManifestCache.open(cfg.storage.cache_path, readonly=True)
        try:
            return cache.meta().get("resync_pending", "") == ""
        finally:
            cache.close()

    return wait_until(done, timeout, step=0.1)


def acks(central: CentralSim, *, snapshots: bool = False) -> list[dict[str, object]]:
    """The acks the centre received, without the start-up snapshot's unless asked."""
    return [m for m in central.messages(SITE, "ack")
            if snapshots or m["body"].get("ack") != "snapshot"]


def central_topics() -> Topics:
    return Topics(SITE)


def make_pki(directory: Path, clients: list[str]) -> dict[str, Path]:
    """A throw-away CA, a server certificate for 127.0.0.1/localhost and client certificates.

    Returns paths: ca.pem, server.pem, server.key, and <name>.pem / <name>.key per client (CN).
    """
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def cert(cn: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None,
             issuer_key: ec.EllipticCurvePrivateKey | None, ca: bool = False) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        return builder.sign(issuer_key or key, hashes.SHA256())

    def write(stem: str, c: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
        paths[f"{stem}.pem"] = directory / f"{stem}.pem"
        paths[f"{stem}.pem"].write_bytes(c.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            paths[f"{stem}.key"] = directory / f"{stem}.key"
            paths[f"{stem}.key"].write_bytes(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))

    paths: dict[str, Path] = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("gate-edge test CA", ca_key, None, None, ca=True)
    write("ca", ca, None)
    for cn in ["server", *clients]:
        key = ec.generate_private_key(ec.SECP256R1())
        write(cn, cert("localhost" if cn == "server" else cn, key, ca.subject, ca_key), key)
    return paths
