"""The console attacked as an attacker on the officers' LAN would: CSRF, session fixation and
theft, role escalation, path traversal in evidence downloads, secrets in logs.

Real SQLite files, real argon2 accounts; traversal paths go over a real socket to a live
uvicorn, byte for byte as written (an HTTP client library would normalize ``..`` away).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import itsdangerous
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edge.console import create_app, serve
from edge.console.security import SESSION_COOKIE
from tests.edge.console.console_site import PASSWORDS, SECRET, Site, form_token, login, make_site

BASE = "https://testserver"


def _refer(site: Site) -> str:
    return site.by_outcome("refer")[0].id


def _outcome(site: Site, pid: str) -> str | None:
    records = site.open_records()
    try:
        row = records.passage(pid)
        assert row is not None
        return row.outcome
    finally:
        records.close()


# -- CSRF -----------------------------------------------------------------------------------------
def test_csrf_token_of_another_session_is_refused(site: Site, app: FastAPI) -> None:
    pid = _refer(site)
    body = {"reason_code": "DOCUMENTS_CHECKED"}
    with TestClient(app, base_url=BASE) as attacker, TestClient(app, base_url=BASE) as victim:
        attacker_token = login(attacker, "sam")          # the attacker's own, valid token
        login(victim, "olga")
        r = victim.post(f"/api/v1/referrals/{pid}/release", json=body,
                        headers={"X-CSRF-Token": attacker_token})
        assert r.status_code == 403 and "CSRF" in r.json()["detail"]
        form = victim.post(f"/referrals/{pid}", data={"action": "release", **body,
                                                       "csrf_token": attacker_token})
        assert form.status_code == 403
    assert _outcome(site, pid) == "refer"


def test_token_from_before_login_dies_at_login(site: Site, app: FastAPI) -> None:
    """A token an attacker planted (or read) on the login page is useless after login."""
    pid = _refer(site)
    with TestClient(app, base_url=BASE) as client:
        before = form_token(client)                       # pre-login session and token
        fresh = login(client, "olga")
        assert fresh != before
        r = client.post(f"/api/v1/referrals/{pid}/release", json={"reason_code": "OTHER",
                                                                   "note": "x"},
                        headers={"X-CSRF-Token": before})
        assert r.status_code == 403
    assert _outcome(site, pid) == "refer"


def test_cross_site_form_posts_do_nothing(site: Site, app: FastAPI) -> None:
    """What a hostile page can make a browser send: form encodings, no custom header.

    The victim's cookie is attached (the worst case: an old browser ignoring SameSite).
    """
    pid = _refer(site)
    evil = {"Origin": "https://evil.example", "Referer": "https://evil.example/x.html"}
    with TestClient(app, base_url=BASE) as victim:
        login(victim, "sam")
        # urlencoded form to the page route, without the token it cannot read
        r = victim.post(f"/referrals/{pid}", headers=evil,
                        data={"action": "release", "reason_code": "DOCUMENTS_CHECKED"})
        assert r.status_code == 403
        # text/plain form whose body happens to be JSON, to the API
        r = victim.post(f"/api/v1/referrals/{pid}/release", headers={
            **evil, "Content-Type": "text/plain"}, content=b'{"reason_code": "DOCUMENTS_CHECKED"}')
        assert r.status_code in (403, 422)
        r = victim.post("/hotlist/remove", headers=evil,
                        data={"kind": "plate", "value": "20C-111.22",
                              "reason_code": "ENTERED_IN_ERROR"})
        assert r.status_code == 403
        # logout CSRF (a nuisance, but still refused)
        assert victim.post("/logout", headers=evil, data={}).status_code == 403
        assert victim.get("/api/v1/session").status_code == 200
    with TestClient(app, base_url=BASE) as anon:
        # login CSRF: log the victim into the attacker's account
        r = anon.post("/login", headers=evil, data={"username": "sam",
                                                     "password": PASSWORDS["sam"],
                                                     "csrf_token": "x" * 43})
        assert r.status_code == 403
        r = anon.post("/api/v1/session", headers={**evil, "Content-Type": "text/plain"},
                      content=json.dumps({"username": "sam", "password": PASSWORDS["sam"]}))
        assert r.status_code == 422 and SESSION_COOKIE not in r.headers.get("set-cookie", "")
    assert _outcome(site, pid) == "refer"


# -- sessions -------------------------------------------------------------------------------------
def _cookie(client: TestClient) -> str:
    value = client.cookies.get(SESSION_COOKIE)
    assert value
    return value


def _plant(client: TestClient, value: str) -> None:
    """Put a cookie into the client's jar where the server's own would go."""
    host = client.base_url.host
    client.cookies.set(SESSION_COOKIE, value, domain=host if "." in host else f"{host}.local")


def _session_of(cookie: str) -> dict[str, Any]:
    data = itsdangerous.TimestampSigner(SECRET).unsign(cookie.encode())
    doc: dict[str, Any] = json.loads(base64.b64decode(data))
    return doc


def test_session_fixation_pre_login_cookie_never_becomes_logged_in(app: FastAPI) -> None:
    with TestClient(app, base_url=BASE) as attacker:
        form_token(attacker)
        planted = _cookie(attacker)                       # attacker's pre-login cookie
    with TestClient(app, base_url=BASE) as victim:
        _plant(victim, planted)
        token = form_token(victim)
        r = victim.post("/login", data={"username": "olga", "password": PASSWORDS["olga"],
                                        "csrf_token": token}, follow_redirects=False)
        assert r.status_code == 303
        issued = _cookie(victim)
        assert issued != planted
        assert _session_of(issued)["csrf"] != _session_of(planted)["csrf"]
    with TestClient(app, base_url=BASE) as attacker:
        _plant(attacker, planted)
        assert attacker.get("/api/v1/session").status_code == 401
        assert attacker.get("/lanes", follow_redirects=False).status_code == 303


def test_forged_and_edited_cookies_are_ignored(app: FastAPI) -> None:
    """Without the server's key an officer cannot make a cookie that says 'ada'."""
    session = {"user": "ada", "epoch": 0, "at": int(time.time()), "csrf": "c" * 43}
    forged = itsdangerous.TimestampSigner("guessed-secret" * 4).sign(
        base64.b64encode(json.dumps(session).encode())).decode()
    with TestClient(app, base_url=BASE) as client:
        _plant(client, forged)
        assert client.get("/api/v1/users").status_code == 401
    with TestClient(app, base_url=BASE) as client:
        login(client, "olga")
        real = _cookie(client)
        payload, rest = real.split(".", 1)
        edited = base64.b64encode(json.dumps({**_session_of(real), "user": "ada"}).encode())
        _plant(client, f"{edited.decode()}.{rest}")
        assert client.get("/api/v1/users").status_code == 401
        assert payload != edited.decode()


def test_logout_ends_the_cookie_even_if_replayed(app: FastAPI) -> None:
    with TestClient(app, base_url=BASE) as client:
        csrf = login(client, "olga")
        kept = _cookie(client)
        assert client.post("/api/v1/session/logout", headers={"X-CSRF-Token": csrf}
                           ).status_code == 200
    with TestClient(app, base_url=BASE) as thief:
        _plant(thief, kept)
        assert thief.get("/api/v1/session").status_code == 401


def test_a_login_lasts_one_shift_even_when_used(site: Site, app: FastAPI,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """session_max_age is an absolute limit, not renewed by activity (a stolen cookie that is
    used now and then must still die at the end of the shift)."""
    real = time.time
    max_age = site.cfg.console.session_max_age.total_seconds()
    pid = _refer(site)
    with TestClient(app, base_url=BASE) as client:
        monkeypatch.setattr(time, "time", lambda: real() - max_age - 3600)
        login(client, "olga")
        monkeypatch.setattr(time, "time", lambda: real() - max_age / 2)
        token = form_token(client, "/referrals")
        r = client.post(f"/referrals/{pid}", follow_redirects=False, data={
            "csrf_token": token, "action": "hold", "reason_code": "INSPECTION_REQUIRED"})
        assert r.status_code == 303                      # the action re-signed the cookie
        monkeypatch.setattr(time, "time", real)
        assert client.get("/api/v1/session").status_code == 401
        assert client.get("/lanes", follow_redirects=False).headers["location"].startswith(
            "/login")


@pytest.mark.parametrize(("secure", "flag"), [(True, True), (False, False)])
def test_cookie_flags_follow_the_config(tmp_path: Path, secure: bool, flag: bool) -> None:
    site = make_site(tmp_path, {"secure_cookies": secure})
    application = create_app(site.cfg, session_secret=SECRET)
    with TestClient(application, base_url=BASE) as client:
        r = client.post("/api/v1/session", json={"username": "olga",
                                                 "password": PASSWORDS["olga"]})
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert ("; secure" in cookie) is flag


# -- roles ----------------------------------------------------------------------------------------
def test_officer_cannot_reach_supervisor_or_admin_actions(site: Site, app: FastAPI) -> None:
    hold = site.by_outcome("hold")[0].id
    with TestClient(app, base_url=BASE) as officer:
        csrf = login(officer, "olga")
        h = {"X-CSRF-Token": csrf}
        assert officer.get("/api/v1/users").status_code == 403
        assert officer.post("/api/v1/users/olga/unlock", headers=h,
                            json={"reason_code": "OTHER", "note": "me"}).status_code == 403
        assert officer.post("/api/v1/hotlist", headers=h, json={
            "kind": "plate", "value": "51C-999.99", "reason": "x",
            "reason_code": "INTELLIGENCE_REPORT"}).status_code == 403
        assert officer.post(f"/api/v1/referrals/{hold}/release", headers=h,
                            json={"reason_code": "DOCUMENTS_CHECKED"}).status_code == 403
        token = form_token(officer, "/hotlist")
        r = officer.post("/hotlist/add", data={"csrf_token": token, "kind": "plate",
                                               "value": "51C-999.99", "reason": "x",
                                               "reason_code": "INTELLIGENCE_REPORT"})
        assert r.status_code == 403
        # no route edits roles; extra fields that would name one are refused, not ignored
        r = officer.post("/api/v1/session", json={"username": "olga",
                                                  "password": PASSWORDS["olga"],
                                                  "role": "admin"})
        assert r.status_code == 422
        assert officer.get("/api/v1/session").json()["role"] == "officer"
    assert _outcome(site, hold) == "hold"


def test_role_is_read_from_the_store_on_every_request(site: Site, app: FastAPI) -> None:
    """A demoted supervisor loses the rights at once; the cookie carries no role."""
    with TestClient(app, base_url=BASE) as sup:
        login(sup, "sam")
        assert sup.get("/api/v1/audit/verify").status_code == 200
        assert "role" not in _session_of(_cookie(sup))
        records = site.open_records()
        try:
            records.db.execute("UPDATE console_users SET role = 'officer' WHERE name = 'sam'")
            records.db.conn.commit()
        finally:
            records.close()
        assert sup.get("/api/v1/audit/verify").status_code == 403
        records = site.open_records()
        try:
            records.db.execute("UPDATE console_users SET disabled = 1 WHERE name = 'sam'")
            records.db.conn.commit()
        finally:
            records.close()
        assert sup.get("/api/v1/session").status_code == 401


# -- evidence downloads ---------------------------------------------------------------------------
@pytest.fixture
def live(site: Site) -> Iterator[int]:
    """The console on a real socket (uvicorn, its own app), stopped after the test."""
    app = create_app(site.cfg, session_secret=SECRET)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = serve(app, "127.0.0.1", port)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)
    assert not thread.is_alive()


def _raw_get(port: int, target: str, cookie: str) -> tuple[int, bytes]:
    """Send the request line exactly as given (no client-side normalization)."""
    request = (f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Cookie: {SESSION_COOKIE}={cookie}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


def _list_evidence(site: Site, pid: str, names: list[str]) -> None:
    """Make a passage row reference extra names, as a buggy or hostile writer might."""
    records = site.open_records()
    try:
        row = records.passage(pid)
        assert row is not None
        evidence = row.evidence + [{"file": n, "kind": "plate_crop"} for n in names]
        records.db.execute("UPDATE passages SET evidence = ? WHERE id = ?",
                           [json.dumps(evidence), pid])
        records.db.conn.commit()
    finally:
        records.close()


def test_evidence_downloads_cannot_leave_the_evidence_dir(site: Site, live: int,
                                                          tmp_path: Path) -> None:
    passage = site.passages[0]
    pid = passage.id
    good = str(passage.evidence[0]["file"])
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("TOP-SECRET-OUTSIDE", encoding="utf-8")
    os.symlink(secret, site.evidence / "link-out.png")
    cfg_file = site.dir / "gate-edge.yaml"
    _list_evidence(site, pid, ["../../gate-edge.yaml", str(secret), "link-out.png",
                               "..%2F..%2Fgate-edge.yaml", "a\x00b.png", "."])
    r = httpx.post(f"http://127.0.0.1:{live}/api/v1/session",
                   json={"username": "olga", "password": PASSWORDS["olga"]})
    cookie = r.cookies[SESSION_COOKIE]
    status, body = _raw_get(live, f"/evidence/{pid}/{good}", cookie)
    assert status == 200 and b"\x89PNG" in body            # the honest download works
    attacks = [
        f"/evidence/{pid}/../../gate-edge.yaml",
        f"/evidence/{pid}/..%2F..%2Fgate-edge.yaml",
        f"/evidence/{pid}/%2e%2e%2f%2e%2e%2fgate-edge.yaml",
        f"/evidence/{pid}/%2e%2e/%2e%2e/gate-edge.yaml",
        f"/evidence/{pid}/..%252F..%252Fgate-edge.yaml",
        f"/evidence/{pid}/{str(secret).replace('/', '%2F')}",
        f"/evidence/{pid}//{secret}",
        f"/evidence/{pid}/link-out.png",
        f"/evidence/{pid}/a%00b.png",
        f"/evidence/{pid}/{good}%00.png",
        f"/evidence/{pid}/.",
        f"/evidence/..%2F..%2F/{good}",
    ]
    for target in attacks:
        status, body = _raw_get(live, target, cookie)
        assert status in (400, 404), (target, status)
        assert b"TOP-SECRET-OUTSIDE" not in body and b"site:" not in body, target
    assert cfg_file.read_text(encoding="utf-8").startswith(("site", "#", "\n"))


# -- secrets in logs ------------------------------------------------------------------------------
def test_no_secret_reaches_the_logs_or_the_audit_trail(site: Site, app: FastAPI,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with TestClient(app, base_url=BASE) as client:
        bad = client.post("/api/v1/session", json={"username": "olga",
                                                   "password": "wrong-but-secret-9"})
        assert bad.status_code == 401
        token = form_token(client)
        client.post("/login", data={"username": "sam", "password": "another-secret-77",
                                    "csrf_token": token})
        csrf = login(client, "ada")
        cookie = _cookie(client)
        client.get("/api/v1/users")
        client.post("/api/v1/session/logout", headers={"X-CSRF-Token": csrf})
    secrets_used = [*PASSWORDS.values(), "wrong-but-secret-9", "another-secret-77", SECRET,
                    csrf, cookie, cookie.split(".")[0]]
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    records = site.open_records()
    try:
        trail = "\n".join(str(row) for row in records.db.execute("SELECT * FROM audit"))
        hashes = [r[0] for r in records.db.execute("SELECT password_hash FROM console_users")]
    finally:
        records.close()
    assert "login.failed" in trail and "login.ok" in trail    # the attempts are recorded...
    for value in secrets_used:
        assert value not in logged, "secret in the logs"
        assert value not in trail, "secret in the audit trail"
    assert all(h.startswith("$argon2") for h in hashes)
    for value in PASSWORDS.values():
        assert all(value not in h for h in hashes)


# -- stored and reflected script injection --------------------------------------------------------
def test_text_from_users_and_the_wire_is_escaped(site: Site, app: FastAPI) -> None:
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    pid = _refer(site)
    with TestClient(app, base_url=BASE) as sup:
        csrf = login(sup, "sam")
        h = {"X-CSRF-Token": csrf}
        assert sup.post("/api/v1/hotlist", headers=h, json={
            "kind": "trader", "value": "0101234567", "reason": payload, "action": "refer",
            "reason_code": "INTELLIGENCE_REPORT"}).status_code == 200
        assert sup.post(f"/api/v1/referrals/{pid}/hold", headers=h, json={
            "reason_code": "OTHER", "note": payload}).status_code == 200
        pages = [sup.get("/hotlist").text, sup.get(f"/passages/{pid}").text,
                 sup.get("/audit").text, sup.get(f"/manifests?q={payload[:60]}").text,
                 sup.get(f"/login?next=/lanes{payload[:40]}").text]
        for page in pages:
            assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;" in pages[0] and "&lt;script&gt;" in pages[1]
        assert "script-src 'self'" in sup.get("/hotlist").headers["content-security-policy"]


def test_evidence_in_day_folders_is_served_and_still_confined(site: Site, live: int) -> None:
    """The daemon files images as ``YYYY-MM-DD/plate-<ULID>.jpg`` (edge/daemon/evidence.py)."""
    pid = site.passages[0].id
    name = "2026-11-23/plate-01JDAYFOLDER.jpg"
    (site.evidence / "2026-11-23").mkdir()
    (site.evidence / name).write_bytes(b"\xff\xd8\xff\xe0 day-folder image")
    _list_evidence(site, pid, [name, "2026-11-23/../../gate-edge.yaml"])
    r = httpx.post(f"http://127.0.0.1:{live}/api/v1/session",
                   json={"username": "olga", "password": PASSWORDS["olga"]})
    cookie = r.cookies[SESSION_COOKIE]
    status, body = _raw_get(live, f"/evidence/{pid}/{name}", cookie)
    assert status == 200 and body.endswith(b"day-folder image")
    for target in (f"/evidence/{pid}/2026-11-23/../../gate-edge.yaml",
                   f"/evidence/{pid}/2026-11-23/..%2F..%2Fgate-edge.yaml",
                   f"/evidence/{pid}/2026-11-23%2F..%2F..%2Fgate-edge.yaml"):
        status, body = _raw_get(live, target, cookie)
        assert status == 404 and b"site:" not in body, target
