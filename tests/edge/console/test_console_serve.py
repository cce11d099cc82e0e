"""serve(): the console over real sockets, plain and TLS, started and stopped like the daemon."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.console import create_app, serve
from tests.edge.console.console_site import PASSWORDS, SECRET, make_site


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "console.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    certfile, keyfile = tmp / "console.crt", tmp / "console.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return certfile, keyfile


def test_tls_serve_login_and_stop(tmp_path: Path) -> None:
    certfile, keyfile = _self_signed(tmp_path)
    site = make_site(tmp_path)
    app = create_app(site.cfg, session_secret=SECRET)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = serve(app, "127.0.0.1", port, certfile=certfile, keyfile=keyfile)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=False) as client:
            r = client.post("/api/v1/session",
                            json={"username": "olga", "password": PASSWORDS["olga"]})
            assert r.status_code == 200 and "secure" in r.headers["set-cookie"].lower()
            assert client.get("/api/v1/session").json()["user"] == "olga"  # cookie kept
    finally:
        server.should_exit = True
        thread.join(10)
    assert not thread.is_alive()
