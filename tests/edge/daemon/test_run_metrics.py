"""``gate-edge run`` reports what a real truck did on ``/metrics``, as Prometheus scrapes it.

The whole simulated lane of ``gate.py`` (Mosquitto, central simulator, relay board under a
gate-controller process, MJPEG camera, e-seal reader on a pty): a cleared truck drives
through, then the test scrapes the daemon's console port like Prometheus does. With the
console off, the same daemon serves /metrics alone on ``console.metrics_port``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from simulators.central.broker import Mosquitto
from tests.edge.daemon.gate import DECLARATION, REPO, TRUCK, Gate, decision, gate
from tests.edge.sync import support

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def lane(tmp_path: Path, broker: Mosquitto, keys: support.Keys) -> Iterator[Gate]:
    yield from gate(tmp_path, broker, keys)


def scrape(lane: Gate, **headers: str) -> dict[str, list[Sample]]:
    r = httpx.get(f"http://127.0.0.1:{lane.metrics_port}/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert "set-cookie" not in r.headers
    return {f.name: list(f.samples) for f in text_string_to_metric_families(r.text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples in {samples}"
    return found[0]


def test_a_cleared_truck_shows_on_metrics(lane: Gate) -> None:
    lane.start_controller()
    lane.start_edge()
    before = scrape(lane)
    assert value(before["gate_edge_decisions"], "gate_edge_decisions_total", lane="in-1",
                 outcome="open") == 0
    lane.publish_declarations(DECLARATION)
    time.sleep(2)
    lane.drive(TRUCK, seal="ES00012345")
    [msg] = lane.wait_passages(1)
    assert decision(msg)["outcome"] == "open", lane.log("gate-edge")[-3000:]
    assert lane.board.wait_for(lambda s: s["passed"], timeout=30), (
        lane.board.snapshot(), lane.log("gate-controller")[-2000:], lane.log("gate-edge")[-3000:])
    fams = scrape(lane)
    assert value(fams["gate_edge_decisions"], "gate_edge_decisions_total", lane="in-1",
                 outcome="open") == 1
    latency = fams["gate_edge_lane_decision_latency_seconds"]
    assert value(latency, "gate_edge_lane_decision_latency_seconds_count", lane="in-1") == 1
    seconds = value(latency, "gate_edge_lane_decision_latency_seconds_sum", lane="in-1")
    assert 0 < seconds < 30  # loop trigger to the open coil of this one truck
    t2d = fams["gate_edge_trigger_to_decision_seconds"]
    assert value(t2d, "gate_edge_trigger_to_decision_seconds_count", lane="in-1") == 1
    reads = {(s.labels["kind"], s.labels["device"]): s.value for s in fams["gate_edge_reads"]
             if s.name == "gate_edge_reads_total"}
    assert reads.get(("plate", "cam-front"), 0) >= 1, reads
    assert reads.get(("seal", "eseal-1"), 0) >= 1, reads
    assert value(fams["gate_edge_broker_connected"], "gate_edge_broker_connected") == 1
    age = value(fams["gate_edge_cache_age_seconds"], "gate_edge_cache_age_seconds")
    assert 0 <= age < 120  # the signed batch published a moment ago
    up = {s.labels["device"]: s.value for s in fams["gate_edge_device_up"]}
    assert up.get("board1") == 1, up


TOKEN = "scrape-token-" + "d" * 24


@pytest.fixture
def lane_without_console(tmp_path: Path, broker: Mosquitto, keys: support.Keys) -> Iterator[Gate]:
    yield from gate(tmp_path, broker, keys, console=False,
                    edge_env={"GATE_EDGE_METRICS_TOKEN": TOKEN})


def test_without_the_console_metrics_are_served_on_their_own_port(
        lane_without_console: Gate) -> None:
    lane = lane_without_console
    lane.start_controller()
    lane.start_edge()
    url = f"http://127.0.0.1:{lane.metrics_port}/metrics"
    log = lane.log("gate-edge")
    assert f"serving Prometheus metrics on {url}" in log, log[-3000:]
    assert f"metrics on {url}" in log and "console on" not in log
    with pytest.raises(OSError):  # no console
        socket.create_connection(("127.0.0.1", lane.console_port), timeout=1).close()
    # the console's guard: the same token, the same refusal
    r = httpx.get(url, timeout=10)
    assert r.status_code == 401 and "gate_edge" not in r.text
    assert r.text == ("401 Unauthorized: send the scrape token as 'Authorization: Bearer TOKEN' "
                      "(console.metrics_token_env GATE_EDGE_METRICS_TOKEN)\n")
    assert httpx.get(url.replace("/metrics", "/"), timeout=10).status_code == 404
    # the daemon's own GateMetrics: lanes from the config, links and broker from its health loop
    deadline = time.monotonic() + 20
    while True:
        fams = scrape(lane, Authorization=f"Bearer {TOKEN}")
        up = {s.labels["device"]: s.value for s in fams["gate_edge_device_up"]}
        broker = value(fams["gate_edge_broker_connected"], "gate_edge_broker_connected")
        if (up.get("board1"), broker) == (1, 1) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert up.get("board1") == 1 and broker == 1, (up, broker, lane.log("gate-edge")[-3000:])
    assert value(fams["gate_edge_site_info"], "gate_edge_site_info", site=support.SITE) == 1
    assert value(fams["gate_edge_decisions"], "gate_edge_decisions_total", lane="in-1",
                 outcome="open") == 0
    # NaN until the central simulator's first snapshot lands, then its age: there either way
    value(fams["gate_edge_cache_age_seconds"], "gate_edge_cache_age_seconds")
    assert "process_resident_memory_bytes" in fams
    # stopped in order like the console, and the port is free again
    assert lane.stop_edge(signal.SIGTERM) == 0, lane.log("gate-edge")[-3000:]
    assert "stopping metrics listener" in lane.log("gate-edge")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", lane.metrics_port), timeout=1).close()


def test_a_metrics_port_in_use_stops_the_start_and_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "gate-edge.yaml"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(f"""
site: {{code: {support.SITE}, name: "Huu Nghi", country: VN, neighbour: CN}}
lanes: [{{id: in-1, direction: inbound}}]
mqtt: {{enabled: false}}
storage: {{dir: {tmp_path / "var"}}}
console: {{enabled: false, metrics_port: {port}}}
""", encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "edge", "run", "-c", str(config)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 1, done.stderr[-3000:]
    assert (f"metrics listener did not start: metrics listener could not listen on "
            f"127.0.0.1:{port}") in done.stderr
    assert "change console.metrics_port or stop what uses it" in done.stderr
    assert "Traceback" not in done.stderr and "stopping stores" in done.stderr
