"""GET /metrics on the console's server, the allow-list, and lane latency on the health page.

Scrapes go over a real socket to the real uvicorn server (``serve()``), like Prometheus does,
so the client address the allow-list checks is the socket's peer; the refusal for an address
this machine cannot have (a public one) uses Starlette's TestClient, which lets a test say
which peer address the request came from.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from edge.console import LaneFeed, create_app, serve
from edge.console.scrape import create_metrics_app
from edge.metrics import GateMetrics
from edge.store import outbox
from tests.edge.console.console_site import SECRET, RecordingGateController, Site, login


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """The app on a real loopback socket; yields its base URL and stops it afterwards."""
    port = _free_port()
    server = serve(app, "127.0.0.1", port)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "console did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "console server did not stop"


def families(text: str) -> dict[str, list[Sample]]:
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def daemon_app(site: Site, metrics: GateMetrics) -> FastAPI:
    feed = LaneFeed((lane.id, lane.name) for lane in site.cfg.lanes)
    return create_app(site.cfg, feed=feed, commands=RecordingGateController(),
                      session_secret=SECRET, metrics=metrics)


def with_console(site: Site, **console: object) -> Site:
    cfg = site.cfg.model_copy(update={"console": site.cfg.console.model_validate(
        {**site.cfg.console.model_dump(), **console})})
    return Site(cfg, site.dir, site.passages)


def test_prometheus_scrapes_the_daemons_metrics_without_a_session(site: Site) -> None:
    metrics = GateMetrics(site.cfg.site.code, [lane.id for lane in site.cfg.lanes])
    app = daemon_app(site, metrics)
    with running(app) as url, httpx.Client(base_url=url) as http:
        # what the daemon reports between two scrapes
        metrics.observe_lane_latency("in-1", 0.21)
        metrics.observe_lane_latency("in-1", 0.34)
        metrics.observe_decision("in-1", "refer", ["PLATE_MISMATCH"], seconds=0.12)
        metrics.count_read("in-1", "plate", "cam-in-1-front")
        metrics.count_serial_error("seal-in-1", "crc")
        metrics.set_outbox_depth(7)
        metrics.set_cache_age(95.0)
        metrics.set_device_up("relay-1", "relay board", True)
        metrics.set_broker_connected(True)
        metrics.count_rejected_input("mqtt", "bad_signature")
        # Prometheus's own Accept header; no cookie, no CSRF token
        r = http.get("/metrics", headers={
            "Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
                      "text/plain;version=0.0.4;q=0.4,*/*;q=0.1"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        assert "set-cookie" not in r.headers  # scraping never starts a session
        om = {f.name: f for f in om_families(r.text)}
        assert value(om["gate_edge_outbox_depth"].samples, "gate_edge_outbox_depth") == 7
        # a scraper without Accept (curl, old Prometheus) gets the classic text format
        r = http.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert "set-cookie" not in r.headers
    fams = families(r.text)
    lat = fams["gate_edge_lane_decision_latency_seconds"]
    assert value(lat, "gate_edge_lane_decision_latency_seconds_count", lane="in-1") == 2
    assert value(lat, "gate_edge_lane_decision_latency_seconds_bucket", lane="in-1",
                 le="0.3") == 1
    assert value(lat, "gate_edge_lane_decision_latency_seconds_count", lane="in-2") == 0
    assert value(fams["gate_edge_decisions"], "gate_edge_decisions_total", lane="in-1",
                 outcome="refer") == 1
    assert value(fams["gate_edge_decision_reasons"], "gate_edge_decision_reasons_total",
                 lane="in-1", reason="PLATE_MISMATCH") == 1
    assert value(fams["gate_edge_reads"], "gate_edge_reads_total", lane="in-1", kind="plate",
                 device="cam-in-1-front") == 1
    assert value(fams["gate_edge_serial_errors"], "gate_edge_serial_errors_total",
                 device="seal-in-1", kind="crc") == 1
    assert value(fams["gate_edge_outbox_depth"], "gate_edge_outbox_depth") == 7
    assert value(fams["gate_edge_cache_age_seconds"], "gate_edge_cache_age_seconds") == 95
    assert value(fams["gate_edge_device_up"], "gate_edge_device_up", device="relay-1",
                 kind="relay board") == 1
    assert value(fams["gate_edge_broker_connected"], "gate_edge_broker_connected") == 1
    assert value(fams["gate_edge_rejected_inputs"], "gate_edge_rejected_inputs_total",
                 interface="mqtt", reason="bad_signature") == 1
    assert value(fams["gate_edge_site_info"], "gate_edge_site_info",
                 site=site.cfg.site.code) == 1


def test_address_outside_the_allow_list_gets_403(site: Site) -> None:
    # the site's Prometheus lives on 10.20.0.0/16; this machine's loopback is not in it
    narrow = with_console(site, metrics_allow=["10.20.0.0/16"])
    with running(daemon_app(narrow, GateMetrics("HN01"))) as url:
        r = httpx.get(f"{url}/metrics")
    assert r.status_code == 403
    assert "127.0.0.1 may not read /metrics" in r.text and "console.metrics_allow" in r.text
    assert "gate_edge" not in r.text
    # default allow-list: loopback and private ranges only, never a public address
    app = daemon_app(site, GateMetrics("HN01"))
    for peer, status in (("203.0.113.9", 403), ("8.8.8.8", 403), ("192.168.10.5", 200),
                         ("172.20.1.1", 200), ("10.1.2.3", 200), ("::ffff:10.0.0.7", 200),
                         ("2001:db8::1", 403), ("fd12::5", 200), ("::1", 200)):
        with TestClient(app, base_url="https://testserver", client=(peer, 40000)) as client:
            r = client.get("/metrics")
            assert r.status_code == status, (peer, r.text[:120])
            if status == 403:
                assert f"{peer} may not read /metrics" in r.text


def test_the_metrics_only_app_answers_scrapers_like_the_console(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """gate-edge run without the console serves /metrics with the console's route and guard."""
    token = "scrape-token-" + "m" * 24
    monkeypatch.setenv("GATE_EDGE_METRICS_TOKEN", token)
    narrow = with_console(site, enabled=False, metrics_allow=["127.0.0.1", "10.20.0.0/16"],
                          metrics_port=9108)
    metrics = GateMetrics(site.cfg.site.code, [lane.id for lane in site.cfg.lanes])
    metrics.set_outbox_depth(3)
    console, alone = daemon_app(narrow, metrics), create_metrics_app(narrow.cfg.console, metrics)
    answers = []
    for app in (console, alone):
        with running(app) as url, httpx.Client(base_url=url) as http:
            missing = http.get("/metrics")
            right = http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert right.status_code == 200 and "set-cookie" not in right.headers
            assert value(families(right.text)["gate_edge_outbox_depth"],
                         "gate_edge_outbox_depth") == 3
            others = http.get("/api/v1/health").status_code, http.get("/").status_code
        with TestClient(app, client=("203.0.113.9", 40000)) as client:
            refused = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        answers.append((missing.status_code, missing.text, missing.headers["www-authenticate"],
                        refused.status_code, refused.text))
        if app is alone:
            assert others == (404, 404)  # /metrics and nothing else: no console behind it
    assert answers[0] == answers[1]
    assert answers[1][0] == 401 and "console.metrics_token_env" in answers[1][1]
    assert answers[1][3] == 403 and "203.0.113.9 may not read /metrics" in answers[1][4]
    assert "console.metrics_allow" in answers[1][4]


def test_metrics_can_be_switched_off(site: Site) -> None:
    off = with_console(site, metrics_enabled=False)
    with running(daemon_app(off, GateMetrics("HN01"))) as url:
        r = httpx.get(f"{url}/metrics")
    assert r.status_code == 404 and "metrics_enabled" in r.text


def test_bad_allow_list_entry_names_the_fix(site: Site) -> None:
    with pytest.raises(ValueError, match=r"'10\.20\.1\.0/16' is not a network.*10\.20\.0\.0/16"):
        with_console(site, metrics_allow=["10.20.1.0/16"])


def test_stand_alone_console_reads_outbox_and_cache_age_from_the_files(site: Site) -> None:
    records = site.open_records()
    try:
        with records.db.atomic():
            outbox.enqueue(records.db, topic="edge/v1/HN01/alarms", kind="alarm",
                           payload={"alarm": "test"}, idempotency_key="k-1",
                           at=datetime.now(UTC))
        depth = outbox.depth(records.db)
    finally:
        records.close()
    app = create_app(site.cfg, session_secret=SECRET)  # no daemon, no GateMetrics given
    with running(app) as url:
        fams = families(httpx.get(f"{url}/metrics").text)
    assert depth >= 1
    assert value(fams["gate_edge_outbox_depth"], "gate_edge_outbox_depth") == depth
    age = value(fams["gate_edge_cache_age_seconds"], "gate_edge_cache_age_seconds")
    assert 3590 < age < 3700  # make_site signs the batch an hour before
    assert value(fams["gate_edge_lane_decision_latency_seconds"],
                 "gate_edge_lane_decision_latency_seconds_count", lane="in-1") == 0


def _observe(metrics: GateMetrics, lane: str, values: list[float], start: datetime) -> None:
    for i, v in enumerate(values):
        metrics.observe_lane_latency(lane, v, at=start + timedelta(seconds=40 * i))


def test_health_json_and_page_show_lane_latency(site: Site) -> None:
    metrics = GateMetrics(site.cfg.site.code, [lane.id for lane in site.cfg.lanes])
    start = datetime.now(UTC) - timedelta(minutes=30)
    in1 = [0.15 + 0.002 * i for i in range(40)] + [6.0]  # one stuck camera
    _observe(metrics, "in-1", in1, start)
    _observe(metrics, "in-2", [0.25, 0.27, 0.31], start + timedelta(seconds=20))
    app = daemon_app(site, metrics)
    with TestClient(app, base_url="https://testserver") as client:
        login(client, "olga")
        h = client.get("/api/v1/health").json()
        page = client.get("/health").text
    assert {"cache", "outbox", "broker", "devices", "lanes", "audit"} <= set(h)  # unchanged
    lat = {row["lane"]: row for row in h["latency"]["lanes"]}
    assert list(lat)[:2] == ["in-1", "in-2"]  # config order
    assert lat["in-1"]["count"] == 41
    assert lat["in-1"]["p50_seconds"] == pytest.approx(float(np.percentile(in1, 50)), abs=1e-4)
    assert lat["in-1"]["p95_seconds"] == pytest.approx(float(np.percentile(in1, 95)), abs=1e-4)
    assert lat["in-1"]["max_seconds"] == 6.0
    assert len(lat["in-1"]["recent"]) == 41 and lat["in-1"]["recent"][-1][1] == 6.0
    assert lat["in-2"]["p50_seconds"] == pytest.approx(0.27)
    assert h["latency"]["target_p95_seconds"] == 0.3
    # the page: one dot per truck, the slow one clipped to the top edge, p50/p95 in the table
    svg = re.search(r"<svg class=\"latency-chart\".*?</svg>", page, re.S)
    assert svg, "no latency chart on the health page"
    assert svg.group(0).count("<circle") == 44
    assert svg.group(0).count('class="clipped"') == 1
    assert "1 slower truck(s)" in page
    row = re.search(r"in-2</td>\s*<td>3</td>\s*<td>(\d+) ms</td><td>(\d+) ms</td>", page)
    assert row and row.groups() == ("270", "306")
    assert "target p95 300 ms" in page


def test_health_page_without_measurements_says_so(site: Site, client: TestClient) -> None:
    login(client, "olga")
    page = client.get("/health").text  # the fixture's console has no daemon behind it
    assert "Measured by the gate-edge daemon; this console runs on its own" in page
    assert "<svg class=\"latency-chart\"" not in page
    with TestClient(daemon_app(site, GateMetrics("HN01", ["in-1"])),
                    base_url="https://testserver") as daemon_client:
        login(daemon_client, "olga")
        assert "No barrier opening measured yet" in daemon_client.get("/health").text
    h = client.get("/api/v1/health").json()
    assert [row["lane"] for row in h["latency"]["lanes"]] == ["in-1", "in-2"]
    assert all(row["count"] == 0 and row["p95_seconds"] is None for row in h["latency"]["lanes"])


def test_scrape_token_from_environment(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "scrape-token-" + "k" * 24
    monkeypatch.setenv("GATE_EDGE_METRICS_TOKEN", token)
    with running(daemon_app(site, GateMetrics("HN01"))) as url, httpx.Client(base_url=url) as http:
        missing = http.get("/metrics")
        wrong = http.get("/metrics", headers={"Authorization": "Bearer " + "x" * 37})
        basic = http.get("/metrics", headers={"Authorization": f"Basic {token}"})
        right = http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    for r in (missing, wrong, basic):
        assert r.status_code == 401 and "gate_edge" not in r.text
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer TOKEN" in missing.text
    assert right.status_code == 200 and "gate_edge_outbox_depth" in right.text
    # the allow-list still applies first: a token does not open the door to the internet
    app = daemon_app(site, GateMetrics("HN01"))
    with TestClient(app, base_url="https://testserver", client=("203.0.113.9", 40000)) as client:
        r = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403


def test_scrape_token_from_systemd_credential(site: Site, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "metrics-token").write_text("cred-token-" + "c" * 30 + "\n", encoding="utf-8")
    monkeypatch.delenv("GATE_EDGE_METRICS_TOKEN", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    app = daemon_app(site, GateMetrics("HN01"))
    with TestClient(app, base_url="https://testserver", client=("127.0.0.1", 40000)) as client:
        assert client.get("/metrics").status_code == 401
        r = client.get("/metrics", headers={"Authorization": "Bearer cred-token-" + "c" * 30})
        assert r.status_code == 200


def test_short_scrape_token_is_refused_at_start(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_EDGE_METRICS_TOKEN", "short")
    with pytest.raises(ValueError, match="shorter than 16 characters"):
        daemon_app(site, GateMetrics("HN01"))
