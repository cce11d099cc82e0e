"""The console's JSON API and pages on real SQLite files: roles, actions, audit, bad input."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from edge.console import LaneFeed, create_app
from edge.store import audit, outbox
from tests.edge.console.console_site import (
    PASSWORDS,
    SECRET,
    RecordingGateController,
    Site,
    demo_trucks,
    form_token,
    login,
    make_site,
    save_truck,
)

ROLES = ("olga", "sam", "ada")  # officer, supervisor, admin


def _refer(site: Site, reason: str | None = None) -> str:
    for p in site.by_outcome("refer"):
        if reason is None or (p.decision and reason in [r.value for r in p.decision.reasons]):
            return p.id
    raise AssertionError(f"no referral with {reason}")


def _audit(site: Site, action: str) -> list[audit.AuditRecord]:
    records = site.open_records()
    try:
        return [r for r in audit.records(records.db) if r.action == action]
    finally:
        records.close()


# -- every API route, every role ------------------------------------------------------------------
def _calls(site: Site) -> dict[tuple[str, str], tuple[str, dict[str, Any] | None]]:
    """One call per API route (method, route path) -> (concrete url, json body)."""
    ref = _refer(site)
    hold = site.by_outcome("hold")[0].id
    return {
        ("GET", "/api/v1/session"): ("/api/v1/session", None),
        ("GET", "/api/v1/reason-codes"): ("/api/v1/reason-codes", None),
        ("GET", "/api/v1/lanes"): ("/api/v1/lanes", None),
        ("GET", "/api/v1/passages"): ("/api/v1/passages?lane=in-1&limit=5", None),
        ("GET", "/api/v1/passages/{passage_id}"): (f"/api/v1/passages/{ref}", None),
        ("GET", "/api/v1/referrals"): ("/api/v1/referrals", None),
        ("POST", "/api/v1/referrals/{passage_id}/release"): (
            f"/api/v1/referrals/{hold}/release", {"reason_code": "DOCUMENTS_CHECKED"}),
        ("POST", "/api/v1/referrals/{passage_id}/hold"): (
            f"/api/v1/referrals/{ref}/hold", {"reason_code": "INSPECTION_REQUIRED"}),
        ("POST", "/api/v1/referrals/{passage_id}/plate"): (
            f"/api/v1/referrals/{ref}/plate", {"reason_code": "OCR_MISREAD", "plate": "BAD"}),
        ("POST", "/api/v1/referrals/{passage_id}/declaration"): (
            f"/api/v1/referrals/{ref}/declaration",
            {"reason_code": "DECLARATION_SCANNED", "declaration_no": "12"}),
        ("GET", "/api/v1/manifests"): ("/api/v1/manifests?q=51C12345", None),
        ("GET", "/api/v1/manifests/{declaration_no}"): ("/api/v1/manifests/105123456780", None),
        ("GET", "/api/v1/hotlist"): ("/api/v1/hotlist", None),
        ("POST", "/api/v1/hotlist"): ("/api/v1/hotlist", {
            "kind": "plate", "value": "51C-999.99", "reason": "test", "action": "refer",
            "reason_code": "INTELLIGENCE_REPORT"}),
        ("POST", "/api/v1/hotlist/remove"): ("/api/v1/hotlist/remove", {
            "kind": "plate", "value": "20C-111.22", "reason_code": "ENTERED_IN_ERROR"}),
        ("GET", "/api/v1/audit"): ("/api/v1/audit?limit=5", None),
        ("GET", "/api/v1/audit/verify"): ("/api/v1/audit/verify", None),
        ("GET", "/api/v1/health"): ("/api/v1/health", None),
        ("GET", "/api/v1/users"): ("/api/v1/users", None),
        ("POST", "/api/v1/users/{name}/unlock"): ("/api/v1/users/olga/unlock",
                                                  {"reason_code": "SUPERVISOR_INSTRUCTION"}),
        ("POST", "/api/v1/session/logout"): ("/api/v1/session/logout", None),
    }


# expected status per role; anything not listed is 200 for everyone
EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("POST", "/api/v1/referrals/{passage_id}/release"): {"olga": 403, "sam": 200, "ada": 200},
    ("POST", "/api/v1/referrals/{passage_id}/plate"): {"olga": 422, "sam": 422, "ada": 422},
    ("POST", "/api/v1/referrals/{passage_id}/declaration"): {"olga": 422, "sam": 422, "ada": 422},
    ("POST", "/api/v1/hotlist"): {"olga": 403},
    ("POST", "/api/v1/hotlist/remove"): {"olga": 403},
    ("GET", "/api/v1/audit/verify"): {"olga": 403},
    ("GET", "/api/v1/users"): {"olga": 403, "sam": 403},
    ("POST", "/api/v1/users/{name}/unlock"): {"olga": 403, "sam": 403},
}


def test_every_api_route_is_covered_by_the_role_matrix(site: Site, app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    routes = {(m.upper(), path) for path, ops in paths.items() for m in ops}
    assert all(path.startswith("/api/v1/") for _, path in routes)
    assert routes - {("POST", "/api/v1/session")} == set(_calls(site))


@pytest.mark.parametrize("user", ROLES)
def test_role_matrix(site: Site, app: FastAPI, user: str) -> None:
    calls = _calls(site)
    with TestClient(app, base_url="https://testserver") as anon:
        for (method, _), (url, body) in calls.items():
            r = anon.request(method, url, json=body)
            assert r.status_code in (401, 403), (url, r.status_code)  # no session, no token
    with TestClient(app, base_url="https://testserver") as client:
        csrf = login(client, user)
        for key, (url, body) in calls.items():
            method = key[0]
            headers = {"X-CSRF-Token": csrf} if method == "POST" else {}
            r = client.request(method, url, json=body, headers=headers)
            expected = EXPECTED.get(key, {}).get(user, 200)
            assert r.status_code == expected, (user, url, r.status_code, r.text)


def test_pages_need_login_and_render_for_every_role(app: FastAPI, site: Site) -> None:
    pages = ["/lanes", "/referrals", "/passages", f"/passages/{_refer(site)}", "/manifests",
             "/manifests?q=MSKU1234565", "/hotlist", "/audit", "/health"]
    with TestClient(app, base_url="https://testserver") as client:
        for page in pages:
            r = client.get(page, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), page
        assert client.get("/events").status_code == 401
        for user in ROLES:
            token = form_token(client)
            r = client.post("/login", data={"username": user, "password": PASSWORDS[user],
                                            "csrf_token": token}, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/lanes"
            for page in pages:
                r = client.get(page)
                assert r.status_code == 200, (user, page)
                assert f"{user} ·" in r.text
            verify = client.get("/audit?verify=true")
            assert verify.status_code == (403 if user == "olga" else 200)
            client.post("/logout", data={"csrf_token": form_token(client, "/lanes")})
        assert client.get("/api/docs").status_code == 200
        assert "/api/v1/referrals/{passage_id}/release" in client.get("/api/docs").text


# -- officer actions ------------------------------------------------------------------------------
def test_officer_release_is_audited_sent_to_gate_and_leaves_queue(
        site: Site, client: TestClient, gate: RecordingGateController) -> None:
    pid = _refer(site, "TRAILER_MISMATCH")
    csrf = login(client, "olga")
    before = client.get("/api/v1/health").json()["outbox"]["depth"]
    r = client.post(f"/api/v1/referrals/{pid}/release", headers={"X-CSRF-Token": csrf},
                    json={"reason_code": "DOCUMENTS_CHECKED", "note": "trailer swapped, papers ok"})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "open"
    assert r.json()["barrier_command"]["accepted"] is True
    assert [(c.lane, c.passage_id, c.action, c.user, c.reason_code) for c in gate.sent] == [
        ("in-1", pid, "open", "olga", "DOCUMENTS_CHECKED")]
    detail = client.get(f"/api/v1/passages/{pid}").json()
    assert detail["decision"]["decided_by"] == "olga" and detail["outcome"] == "open"
    assert [d["outcome"] for d in detail["decisions"]] == ["refer", "open"]
    actions = [(t["action"], t["actor"], t["reason_code"]) for t in detail["timeline"]]
    assert ("officer.release", "olga", "DOCUMENTS_CHECKED") in actions
    assert ("barrier.open", "olga", "DOCUMENTS_CHECKED") in actions
    note = next(t for t in detail["timeline"] if t["action"] == "officer.release")["detail"]["note"]
    assert note == "trailer swapped, papers ok"
    assert pid not in [p["id"] for p in client.get("/api/v1/referrals").json()]
    assert client.get("/api/v1/health").json()["outbox"]["depth"] == before + 1
    again = client.post(f"/api/v1/referrals/{pid}/release", headers={"X-CSRF-Token": csrf},
                        json={"reason_code": "DOCUMENTS_CHECKED"})
    assert again.status_code == 409 and "not waiting" in again.json()["detail"]
    assert client.get("/api/v1/audit/verify").status_code == 403  # officer
    assert site.open_records().db.execute("SELECT 1").fetchone()
    records = site.open_records()
    try:
        assert audit.verify(records.db).ok
        assert outbox.depth(records.db) == before + 1
    finally:
        records.close()


def test_release_refused_by_gate_controller_is_recorded(
        site: Site, client: TestClient, gate: RecordingGateController) -> None:
    gate.accept = False
    pid = _refer(site)
    csrf = login(client, "olga")
    r = client.post(f"/api/v1/referrals/{pid}/release", headers={"X-CSRF-Token": csrf},
                    json={"reason_code": "PLATE_CHECKED_VISUALLY"})
    assert r.status_code == 200
    assert "NOT delivered" in r.json()["message"]
    rows = [x for x in _audit(site, "barrier.open") if x.subject == f"passage:{pid}"]
    assert rows and rows[0].detail["accepted"] is False


def test_hold_release_needs_a_supervisor(site: Site, app: FastAPI) -> None:
    pid = site.by_outcome("hold")[0].id
    body = {"reason_code": "SUPERVISOR_INSTRUCTION", "note": "alert withdrawn by phone"}
    with TestClient(app, base_url="https://testserver") as officer:
        csrf = login(officer, "olga")
        r = officer.post(f"/api/v1/referrals/{pid}/release", json=body,
                         headers={"X-CSRF-Token": csrf})
        assert r.status_code == 403 and "supervisor" in r.json()["detail"]
    with TestClient(app, base_url="https://testserver") as sup:
        csrf = login(sup, "sam")
        r = sup.post(f"/api/v1/referrals/{pid}/release", json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json()["outcome"] == "open"


def test_officer_hold_keeps_barrier_closed(site: Site, client: TestClient,
                                           gate: RecordingGateController) -> None:
    pid = _refer(site, "SEAL_TAMPERED")
    csrf = login(client, "olga")
    r = client.post(f"/api/v1/referrals/{pid}/hold", headers={"X-CSRF-Token": csrf},
                    json={"reason_code": "INSPECTION_REQUIRED", "note": "to the inspection bay"})
    assert r.status_code == 200 and r.json()["outcome"] == "hold"
    assert gate.sent[-1].action == "keep_closed"
    assert pid not in [p["id"] for p in client.get("/api/v1/referrals").json()]


def test_plate_typed_by_hand_is_checked_and_re_decided(site: Site, client: TestClient,
                                                       gate: RecordingGateController) -> None:
    truck = dict(demo_trucks()[0])  # the cleared AEO truck, but the camera misread 3 as 8
    truck["reads"] = {**truck["reads"], "tractor": [{"text": "51C12845", "confidence": 0.93}]}
    cache, records = site.open_cache(), site.open_records()
    try:
        passage = save_truck(site.cfg, cache, records, truck, site.evidence)
    finally:
        cache.close()
        records.close()
    assert passage.decision and passage.decision.outcome.value == "refer"
    csrf = login(client, "olga")
    url = f"/api/v1/referrals/{passage.id}/plate"
    bad = client.post(url, headers={"X-CSRF-Token": csrf},
                      json={"plate": "51C-I23.45", "reason_code": "OCR_MISREAD"})
    assert bad.status_code == 422
    err = bad.json()["detail"][0]
    assert err["loc"] == ["body", "plate"] and "51F-123.45" in err["msg"] and "I/1" in err["msg"]
    assert "Did you mean 51C-123.45?" in err["msg"]
    ok = client.post(url, headers={"X-CSRF-Token": csrf},
                     json={"plate": "51C-123.45", "reason_code": "OCR_MISREAD"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["outcome"] == "open"
    assert gate.sent[-1].action == "open" and gate.sent[-1].passage_id == passage.id
    detail = client.get(f"/api/v1/passages/{passage.id}").json()
    assert detail["reads"]["tractor"][0]["camera"] == "manual"
    assert detail["decision"]["declaration_no"] == "105123456780"
    row = next(t for t in detail["timeline"] if t["action"] == "officer.plate")
    assert row["detail"]["plate"] == {"from": ["51C12845"], "to": "51C12345"}


def test_declaration_number_as_fallback_identification(site: Site, client: TestClient) -> None:
    pid = next(p.id for p in site.by_outcome("refer")
           if p.decision and "NO_MANIFEST" in p.decision.reasons)  # unknown truck 99C99999
    csrf = login(client, "olga")
    url = f"/api/v1/referrals/{pid}/declaration"
    for number, needle in (("12345", "12 digits"), ("999999999999", "not in the local cache")):
        r = client.post(url, headers={"X-CSRF-Token": csrf},
                        json={"declaration_no": number, "reason_code": "DECLARATION_SCANNED"})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "declaration_no"]
        assert needle in r.json()["detail"][0]["msg"]
    r = client.post(url, headers={"X-CSRF-Token": csrf},
                    json={"declaration_no": "1051-2345-6780", "reason_code": "DECLARATION_SCANNED"})
    assert r.status_code == 200
    # the document names 51C-123.45 but the camera read 99C-999.99: still an officer's call
    assert r.json()["outcome"] == "refer" and "PLATE_MISMATCH" in r.json()["reasons"]
    assert pid in [p["id"] for p in client.get("/api/v1/referrals").json()]
    detail = client.get(f"/api/v1/passages/{pid}").json()
    assert detail["declaration_no"] == "105123456780"
    assert detail["decision"]["plate_match"] == "declaration"


def test_forms_show_inline_errors_naming_the_field(site: Site, client: TestClient) -> None:
    pid = _refer(site)
    login(client, "olga")
    token = form_token(client, "/referrals")
    r = client.post(f"/referrals/{pid}", data={"csrf_token": token, "action": "release"})
    assert r.status_code == 422
    assert 'id="reason-' in r.text and "choose a reason code from the list" in r.text
    r = client.post(f"/referrals/{pid}", data={"csrf_token": token, "action": "release",
                                               "reason_code": "OTHER"})
    assert r.status_code == 422 and "reason OTHER needs a note" in r.text
    r = client.post(f"/referrals/{pid}", data={"csrf_token": token, "action": "plate",
                                               "reason_code": "OCR_MISREAD", "plate": "ZZZ"})
    assert r.status_code == 422 and "ZZZ fits no known plate layout" in r.text
    assert 'value="ZZZ"' in r.text  # what the officer typed is kept
    r = client.post(f"/referrals/{pid}", data={"csrf_token": token, "action": "enter",
                                               "reason_code": "DOCUMENTS_CHECKED"})
    assert r.status_code == 422 and "choose Release, Hold" in r.text  # Enter alone never releases
    r = client.post(f"/referrals/{pid}", data={"csrf_token": token, "action": "release",
                                               "reason_code": "DOCUMENTS_CHECKED",
                                               "back": f"/passages/{pid}"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/passages/{pid}"
    page = client.get(f"/passages/{pid}").text
    assert "OPEN" in page and "barrier command accepted" in page
    assert "<b>officer.release</b> by olga [DOCUMENTS_CHECKED]" in page


# -- security -------------------------------------------------------------------------------------
def test_csrf_is_required_on_every_unsafe_call(site: Site, client: TestClient) -> None:
    pid = _refer(site)
    r = client.post("/login", data={"username": "olga", "password": PASSWORDS["olga"]})
    assert r.status_code == 403  # login form without its token
    csrf = login(client, "olga")
    body = {"reason_code": "DOCUMENTS_CHECKED"}
    for headers in ({}, {"X-CSRF-Token": "forged" * 8}):
        r = client.post(f"/api/v1/referrals/{pid}/release", json=body, headers=headers)
        assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = client.post(f"/referrals/{pid}", data={"action": "release", **body})
    assert r.status_code == 403 and "CSRF" in r.text
    r = client.post("/logout", data={})
    assert r.status_code == 403
    assert _refer(site) == pid and client.get(f"/api/v1/passages/{pid}").json()["outcome"] == "refer"
    assert client.post(f"/api/v1/referrals/{pid}/release", json=body,
                       headers={"X-CSRF-Token": csrf}).status_code == 200


def test_lockout_after_failed_logins_is_audited_and_admin_unlocks(site: Site, app: FastAPI) -> None:
    limit = site.cfg.console.max_failed_logins
    with TestClient(app, base_url="https://testserver") as client:
        for _ in range(limit):
            r = client.post("/api/v1/session", json={"username": "olga", "password": "wrong-one"})
            assert r.status_code == 401
        assert "locked" in r.json()["detail"]
        r = client.post("/api/v1/session", json={"username": "olga", "password": PASSWORDS["olga"]})
        assert r.status_code == 401 and "locked" in r.json()["detail"]
        token = form_token(client)
        page = client.post("/login", data={"username": "olga", "password": PASSWORDS["olga"],
                                           "csrf_token": token})
        assert page.status_code == 401 and "locked" in page.text and 'id="password-error"' in page.text
        failed = _audit(site, "login.failed")
        assert len(failed) == limit + 2 and all(f.actor == "olga" for f in failed)
        assert failed[0].reason_code == "BAD_CREDENTIALS" and failed[0].detail["client"]
        assert len(_audit(site, "user.locked")) == 1
        csrf = login(client, "ada")
        accounts = {u["name"]: u for u in client.get("/api/v1/users").json()}
        assert accounts["olga"]["locked_until"] is not None
        r = client.post("/api/v1/users/olga/unlock", headers={"X-CSRF-Token": csrf},
                        json={"reason_code": "IDENTITY_CONFIRMED", "note": "checked badge"})
        assert r.status_code == 200
        assert client.post("/api/v1/users/nobody/unlock", headers={"X-CSRF-Token": csrf},
                           json={"reason_code": "OTHER", "note": "x"}).status_code == 404
    with TestClient(app, base_url="https://testserver") as client:
        login(client, "olga")
    assert _audit(site, "user.unlock")[0].actor == "ada"


def test_login_rate_limit_per_terminal(tmp_path: Any) -> None:
    site = make_site(tmp_path, {"login_attempts_per_minute": 3})
    app = create_app(site.cfg, session_secret=SECRET)
    with TestClient(app, base_url="https://testserver") as client:
        codes = [client.post("/api/v1/session", json={"username": f"u{i}", "password": "x"}
                             ).status_code for i in range(4)]
        assert codes == [401, 401, 401, 429]
        r = client.post("/api/v1/session", json={"username": "olga", "password": PASSWORDS["olga"]})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert len(_audit(site, "login.throttled")) == 2


def test_unknown_user_and_wrong_password_look_the_same(client: TestClient) -> None:
    a = client.post("/api/v1/session", json={"username": "olga", "password": "nope-nope"})
    b = client.post("/api/v1/session", json={"username": "ghost", "password": "nope-nope"})
    assert a.status_code == b.status_code == 401 and a.json() == b.json()


def test_session_cookie_flags_headers_and_logout_everywhere(app: FastAPI) -> None:
    with TestClient(app, base_url="https://testserver") as first:
        r = first.post("/api/v1/session", json={"username": "sam", "password": PASSWORDS["sam"]})
        cookie = r.headers["set-cookie"].lower()
        for flag in ("httponly", "secure", "samesite=strict", "max-age=43200"):
            assert flag in cookie
        csrf = r.json()["csrf_token"]
        page = first.get("/lanes")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        with TestClient(app, base_url="https://testserver") as copy:
            copy.cookies.update(first.cookies)
            assert copy.get("/api/v1/session").status_code == 200
            assert first.post("/api/v1/session/logout",
                              headers={"X-CSRF-Token": csrf}).status_code == 200
            assert copy.get("/api/v1/session").status_code == 401  # stolen copy dies too


# -- bad input ------------------------------------------------------------------------------------
def test_unknown_ids_are_404(site: Site, client: TestClient) -> None:
    csrf = login(client, "sam")
    pid = site.passages[0].id
    assert client.get("/api/v1/passages/01NOSUCHPASSAGE").status_code == 404
    assert client.get("/passages/01NOSUCHPASSAGE").status_code == 404
    assert client.get("/api/v1/manifests/999999999999").status_code == 404
    assert client.post("/api/v1/referrals/01NOSUCH/release", headers={"X-CSRF-Token": csrf},
                       json={"reason_code": "DOCUMENTS_CHECKED"}).status_code == 404
    assert client.post("/api/v1/hotlist/remove", headers={"X-CSRF-Token": csrf},
                       json={"kind": "seal", "value": "NOPE1234",
                             "reason_code": "ENTERED_IN_ERROR"}).status_code == 404
    assert client.get(f"/evidence/{pid}/nothing.png").status_code == 404
    assert client.get(f"/evidence/{pid}/..%2F..%2Fgate-edge.yaml").status_code == 404
    assert client.get("/no/such/page").status_code == 404


def test_oversized_bodies_are_413(site: Site, client: TestClient) -> None:
    csrf = login(client, "olga")
    big = {"reason_code": "OTHER", "note": "x" * (site.cfg.console.max_body_bytes + 10)}
    url = f"/api/v1/referrals/{_refer(site)}/release"
    r = client.post(url, json=big, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 413

    def chunks() -> Any:  # no Content-Length: the limit counts what arrives
        for _ in range(100):
            yield b"a" * 1024

    r = client.post(url, content=chunks(), headers={"X-CSRF-Token": csrf,
                                                    "Content-Type": "application/json"})
    assert r.status_code == 413
    assert client.get(f"/api/v1/passages/{_refer(site)}").json()["outcome"] == "refer"


def test_api_body_validation_names_the_field(site: Site, client: TestClient) -> None:
    csrf = login(client, "sam")
    r = client.post("/api/v1/hotlist", headers={"X-CSRF-Token": csrf},
                    json={"kind": "boat", "value": "", "reason": "x", "reason_code": "OTHER"})
    assert r.status_code == 422
    locs = {tuple(e["loc"]) for e in r.json()["detail"]}
    assert ("body", "kind") in locs and ("body", "value") in locs


# -- hotlist, manifests, evidence, health, audit --------------------------------------------------
def test_supervisor_edits_hotlist_through_the_page(site: Site, client: TestClient) -> None:
    login(client, "sam")
    token = form_token(client, "/hotlist")
    r = client.post("/hotlist/add", data={"csrf_token": token, "kind": "container",
                                          "value": "", "reason": "", "reason_code": ""})
    assert r.status_code == 422
    for needle in ("value", "reason", "choose a reason code"):
        assert needle in r.text
    r = client.post("/hotlist/add", data={
        "csrf_token": token, "kind": "container", "value": "MSKU 123456-5", "reason": "tip-off",
        "action": "refer", "reason_code": "INTELLIGENCE_REPORT", "note": "call from HQ"},
        follow_redirects=False)
    assert r.status_code == 303
    assert "MSKU1234565" in client.get("/hotlist").text
    row = _audit(site, "hotlist.add")[0]
    assert (row.actor, row.subject, row.reason_code) == ("sam", "hotlist:container:MSKU1234565",
                                                         "INTELLIGENCE_REPORT")
    assert row.detail["note"] == "call from HQ"
    r = client.post("/hotlist/remove", data={"csrf_token": token, "kind": "container",
                                             "value": "MSKU1234565",
                                             "reason_code": "ENTERED_IN_ERROR"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert not [e for e in client.get("/api/v1/hotlist").json() if e["kind"] == "container"]
    assert _audit(site, "hotlist.remove")[0].actor == "sam"


def test_manifest_search_by_every_key(client: TestClient) -> None:
    login(client, "olga")
    for q in ("105123456780", "51C-123.45", "MSKU1234565", "VNS1234567"):
        found = [m["declaration_no"] for m in client.get(f"/api/v1/manifests?q={q}").json()]
        assert "105123456780" in found, q
    assert client.get("/api/v1/manifests?q=NOTHING").json() == []
    assert "Nothing in the local cache matches" in client.get("/manifests?q=NOTHING").text


def test_evidence_is_served_and_checked(site: Site, client: TestClient) -> None:
    login(client, "olga")
    passage = site.passages[0]
    name = passage.evidence[0]["file"]
    r = client.get(f"/evidence/{passage.id}/{name}")
    assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
    assert "SHA-256 ok" in client.get(f"/passages/{passage.id}").text
    (site.evidence / name).write_bytes(b"\x89PNG tampered")
    assert "SHA-256 MISMATCH" in client.get(f"/passages/{passage.id}").text


def test_health_reports_cache_outbox_devices_and_broker(site: Site, app: FastAPI,
                                                        client: TestClient) -> None:
    login(client, "olga")
    feed: LaneFeed = app.state.feed
    h = client.get("/api/v1/health").json()
    cache = site.open_cache()
    try:
        assert h["cache"]["fresh"] is True and h["cache"]["manifests"] == cache.count() > 0
    finally:
        cache.close()
    assert h["broker"] is None and h["devices"] == []
    feed.set_broker(False, "connection refused by 10.0.0.5:8883")
    feed.set_device("cam-in-1", "camera", False, "no frames for 12 s")
    feed.update_lane("in-1", state="fault", faults=("relay board timeout",))
    h = client.get("/api/v1/health").json()
    assert h["broker"]["connected"] is False
    assert h["devices"][0]["name"] == "cam-in-1" and h["devices"][0]["ok"] is False
    page = client.get("/health").text
    assert "disconnected" in page and "no frames for 12 s" in page and "relay board timeout" in page


def test_audit_page_and_tamper_detection(site: Site, client: TestClient) -> None:
    login(client, "sam")
    assert client.get("/api/v1/audit/verify").json()["ok"] is True
    assert "Chain verified" in client.get("/audit?verify=true").text
    rows = client.get("/api/v1/audit?limit=3").json()
    assert len(rows) == 3 and rows[0]["id"] > rows[1]["id"] > rows[2]["id"]
    conn = sqlite3.connect(site.cfg.storage.records_path)
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE id = 2")
    conn.commit()
    conn.close()
    check = client.get("/api/v1/audit/verify").json()
    assert check["ok"] is False and check["first_bad_id"] == 2
    assert "CHAIN BROKEN at record #2" in client.get("/audit?verify=true").text


def test_lanes_show_last_passage_of_each_lane(site: Site, client: TestClient) -> None:
    login(client, "olga")
    lanes = {x["lane"]: x for x in client.get("/api/v1/lanes").json()}
    last = {p.lane: p for p in site.passages}
    for lane_id, passage in last.items():
        assert lanes[lane_id]["passage_id"] == passage.id
    page = client.get("/lanes").text
    assert 'id="lane-in-1"' in page and 'id="lane-in-2"' in page


def test_a_decision_made_meanwhile_elsewhere_is_not_overwritten(
        site: Site, app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another officer's console (its own process and connection) releases the truck between
    the moment this console read the passage and the moment it writes: 409, nothing lost."""
    pid = _refer(site)
    service = app.state.service
    original = service.passage

    def read_then_someone_else_decides(passage_id: str) -> Any:
        row = original(passage_id)
        other = create_app(site.cfg, session_secret=SECRET)
        with TestClient(other, base_url="https://testserver") as elsewhere:
            csrf = login(elsewhere, "sam")
            r = elsewhere.post(f"/api/v1/referrals/{pid}/hold", headers={"X-CSRF-Token": csrf},
                               json={"reason_code": "INSPECTION_REQUIRED"})
            assert r.status_code == 200
        return row

    csrf = login(client, "olga")
    monkeypatch.setattr(service, "passage", read_then_someone_else_decides)
    r = client.post(f"/api/v1/referrals/{pid}/release", headers={"X-CSRF-Token": csrf},
                    json={"reason_code": "DOCUMENTS_CHECKED"})
    monkeypatch.undo()
    assert r.status_code == 409 and "changed meanwhile" in r.json()["detail"]
    detail = client.get(f"/api/v1/passages/{pid}").json()
    assert detail["outcome"] == "hold" and detail["decision"]["decided_by"] == "sam"
    assert not [t for t in detail["timeline"] if t["action"] == "officer.release"]


def test_session_secret_from_environment_or_systemd_credential(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.config.console import ConsoleConfig

    cfg = ConsoleConfig()
    monkeypatch.delenv("GATE_EDGE_CONSOLE_SECRET", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "console-session-secret").write_text("c" * 48 + "\n", encoding="utf-8")
    assert cfg.session_secret() == "c" * 48
    monkeypatch.setenv("GATE_EDGE_CONSOLE_SECRET", "e" * 40)
    assert cfg.session_secret() == "e" * 40
    monkeypatch.setenv("GATE_EDGE_CONSOLE_SECRET", "short")
    with pytest.raises(ValueError, match="shorter than 32"):
        cfg.session_secret()
    monkeypatch.delenv("GATE_EDGE_CONSOLE_SECRET")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    first, second = cfg.session_secret(), cfg.session_secret()
    assert len(first) >= 32 and first != second  # random, and logged as a warning


def test_login_page_warns_when_secure_cookie_cannot_stick(app: FastAPI) -> None:
    with TestClient(app, base_url="http://10.20.0.5") as lan:
        assert "open it over\n  https://" in lan.get("/login").text
    with TestClient(app, base_url="http://127.0.0.1") as local:
        assert "open it over" not in local.get("/login").text


def test_fixture_checkpoint_decides_like_the_demo(site: Site) -> None:
    """The console tests stand on the real matcher's decisions for config/demo trucks."""
    got = [p.decision.outcome.value if p.decision else None for p in site.passages]
    assert got == [t["expect"] for t in demo_trucks()]
