"""Malformed HTTP requests to the console: each gets a 4xx that names the problem, nothing is
changed, and the console keeps serving (docs/robustness.md). Real SQLite files."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.edge.console.console_site import PASSWORDS, Site, form_token, login


def _refer(site: Site) -> str:
    return site.by_outcome("refer")[0].id


def test_malformed_api_requests_get_named_4xx(site: Site, client: TestClient) -> None:
    csrf = login(client, "sam")
    pid = _refer(site)
    h = {"X-CSRF-Token": csrf, "Content-Type": "application/json"}
    url = f"/api/v1/referrals/{pid}/release"
    cases = [
        (client.post(url, headers=h, content=b'{"reason_code": "DOCUMENTS_CHECKED"'), 422,
         "JSON decode error"),
        (client.post(url, headers=h, content=b"\xff\xfe\x00"), 400, "parsing the body"),
        (client.post(url, headers=h, content=b"[]"), 422, "valid dictionary"),
        (client.post(url, headers=h, json={"reason_code": "DOCUMENTS_CHECKED", "admin": True}),
         422, "Extra inputs"),
        (client.post(url, headers=h, json={"reason_code": 7}), 422, "valid string"),
        (client.post(url, headers=h, json={"reason_code": "NOT_A_CODE"}), 422, "reason"),
        (client.post(f"/api/v1/referrals/{'P' * 65}/release", headers=h,
                     json={"reason_code": "DOCUMENTS_CHECKED"}), 422, "at most 64"),
        (client.get("/api/v1/audit?before_id=abc"), 422, "valid integer"),
        (client.get("/api/v1/audit?before_id=-5"), 422, "greater than or equal"),
        (client.get("/api/v1/passages?limit=100000"), 422, "less than or equal"),
        (client.get("/api/v1/passages?outcome=maybe"), 422, "'open', 'refer' or 'hold'"),
        (client.get(f"/api/v1/manifests?q={'9' * 65}"), 422, "at most 64"),
        (client.post("/api/v1/hotlist", headers=h, json={
            "kind": "plate", "value": "51C-999.99", "reason": "x", "reason_code": "OTHER",
            "note": "n", "expires_at": "next tuesday"}), 422, "datetime"),
    ]
    for response, status, needle in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert needle in response.text, (response.request.url, response.text)
    bad_length = client.post(url, headers={**h, "Content-Length": "lots"}, content=b"{}")
    assert bad_length.status_code == 400 and "Content-Length" in bad_length.text
    detail = client.get(f"/api/v1/passages/{pid}").json()
    assert detail["outcome"] == "refer"                      # nothing was changed


def test_malformed_forms_get_the_page_back(site: Site, client: TestClient) -> None:
    login(client, "olga")
    pid = _refer(site)
    token = form_token(client, "/referrals")
    r = client.post(f"/referrals/{pid}", data={"csrf_token": token, "action": "release",
                                               "reason_code": "DOCUMENTS_CHECKED",
                                               "note": "x" * 2001})
    assert r.status_code == 422 and "at most 2000" in r.text
    r = client.post(f"/referrals/{pid}", json={"csrf_token": token, "action": "release"})
    assert r.status_code == 403                            # JSON to a form route: no token seen
    r = client.post(f"/referrals/{pid}", data={"csrf_token": token, "action": "fly",
                                               "reason_code": "DOCUMENTS_CHECKED"})
    assert r.status_code == 422 and "choose Release, Hold" in r.text
    r = client.post(f"/referrals/{pid}", data={"csrf_token": token, "action": "release",
                                               "reason_code": "DOCUMENTS_CHECKED",
                                               "back": "https://evil.example/"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/referrals"   # no open redirect
    client.post("/logout", data={"csrf_token": form_token(client, "/lanes")})
    for target in ("//evil.example", "/\\evil.example", "https://evil.example", "/\t/evil.example",
                   "/\n/evil.example", "javascript:alert(1)"):
        token = form_token(client)
        r = client.post("/login", data={"username": "olga", "password": PASSWORDS["olga"],
                                        "csrf_token": token, "next": target},
                        follow_redirects=False)
        location = r.headers["location"]
        # what a browser does with it: strip tab and newline, then resolve against the console
        followed = location.replace("\t", "").replace("\n", "").replace("\r", "")
        assert r.status_code == 303 and followed.startswith("/"), (target, location)
        assert not followed.startswith(("//", "/\\")), (target, location)
        client.post("/logout", data={"csrf_token": form_token(client, "/lanes")})
    login(client, "olga")
    assert client.get("/lanes").status_code == 200
