"""``gate-edge run`` against a whole simulated lane: every part real, only pixels and bytes.

The plate reaches gate-edge through the camera simulator's MJPEG pixels, the seal through
e-seal frames on a pty, the vehicle through loop inputs of a Modbus RTU board that a real
gate-controller process polls, the declaration through a signed MQTT batch; the test then
checks what the centre received and what the barrier did.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.central.broker import Mosquitto
from tests.edge.daemon.gate import DECLARATION, TRUCK, Gate, decision, gate
from tests.edge.sync import support

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def lane(tmp_path: Path, broker: Mosquitto, keys: support.Keys) -> Iterator[Gate]:
    yield from gate(tmp_path, broker, keys)


def test_cleared_truck_opens_and_the_centre_gets_the_passage(lane: Gate) -> None:
    lane.start_controller()
    lane.start_edge()
    lane.publish_declarations(DECLARATION)
    time.sleep(2)   # the batch is applied and acknowledged
    lane.drive(TRUCK, seal="ES00012345")
    [msg] = lane.wait_passages(1)
    got = decision(msg)
    assert got["outcome"] == "open", (got, lane.log("gate-edge")[-3000:])
    assert got["declaration_no"] == "105123456781"
    assert lane.board.wait_for(lambda s: s["passed"], timeout=30), lane.board.snapshot()
    snap = lane.board.snapshot()
    assert snap["open_rises"] == 1 and snap["collisions"] == []


def test_unknown_truck_is_referred_and_the_barrier_stays_down(lane: Gate) -> None:
    lane.start_controller()
    lane.start_edge()
    lane.publish_declarations(DECLARATION)
    time.sleep(2)
    lane.drive({**TRUCK, "tractor_plate": "51C67890"}, seal="ES00012345",
               turn_back_after_s=12.0)
    [msg] = lane.wait_passages(1)
    got = decision(msg)
    assert got["outcome"] == "refer"
    assert "NO_MANIFEST" in got["reasons"]
    time.sleep(1)
    assert lane.board.snapshot()["open_rises"] == 0


def test_sigterm_stops_cleanly_and_leaves_the_lane_to_the_controller(lane: Gate) -> None:
    lane.start_controller()
    lane.start_edge()
    assert lane.stop_edge(signal.SIGTERM) == 0, lane.log("gate-edge")[-3000:]
    assert "stopping" in lane.log("gate-edge")
    # The controller notices the silence and refuses openings; nothing moved.
    with lane.controller() as client:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and client.status()["link_alive"]:
            time.sleep(0.1)
        assert client.status()["link_alive"] is False
    assert lane.board.snapshot()["open_rises"] == 0


def test_officer_releases_a_referred_truck_from_the_console(lane: Gate) -> None:
    """The console's release goes through the daemon to gate-controller and the arm rises."""
    import httpx

    lane.add_user("nguyen.van.a", "officer", "correct horse battery")
    lane.start_controller()
    lane.start_edge()
    lane.publish_declarations(DECLARATION)
    time.sleep(2)
    lane.drive({**TRUCK, "tractor_plate": "51C67890"}, seal="ES00012345",
               turn_back_after_s=60.0)
    [msg] = lane.wait_passages(1)
    passage_id = msg["body"]["passage_id"]
    assert decision(msg)["outcome"] == "refer"
    base = f"http://127.0.0.1:{lane.console_port}/api/v1"
    with httpx.Client(base_url=base, timeout=10) as http:
        login = http.post("/session", json={"username": "nguyen.van.a",
                                            "password": "correct horse battery"})
        assert login.status_code == 200, login.text
        csrf = login.json()["csrf_token"]
        answer = http.post(f"/referrals/{passage_id}/release",
                           json={"reason_code": "DOCUMENTS_CHECKED", "note": "papers fine"},
                           headers={"X-CSRF-Token": csrf})
        assert answer.status_code == 200, answer.text
        assert answer.json()["barrier_command"]["accepted"] is True, answer.json()
    assert lane.board.wait_for(lambda s: s["passed"], timeout=30), lane.board.snapshot()
    assert lane.board.snapshot()["open_rises"] == 1
