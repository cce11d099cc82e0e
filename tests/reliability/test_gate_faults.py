"""Faults against the whole simulated gate: processes killed, the broker gone, restarts.

After each fault: the centre received every passage exactly once (after de-duplication, seq
gap-free), no passage was recorded twice for one truck, and the barrier invariants held on
the simulated board: it never rose without a decision and never came down on a vehicle.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.central.broker import Mosquitto
from tests.edge.daemon.gate import DECLARATION, TRUCK, Gate, decision
from tests.edge.sync import support

pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.timeout(300)]


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    # Persistence: the centre's session (and what is queued for it) survives a broker restart,
    # as it must in production (docs/deployment.md).
    with Mosquitto(tmp_path / "durable", persistence=True) as mosq:
        yield mosq


@pytest.fixture
def lane(tmp_path: Path, durable_broker: Mosquitto, keys: support.Keys) -> Iterator[Gate]:
    g = Gate(tmp_path, durable_broker, keys)
    try:
        yield g
    finally:
        g.close()


def assert_invariants(lane: Gate) -> None:
    snap = lane.board.snapshot()
    assert snap["collisions"] == [], snap
    assert snap["max_close_over_occupied_s"] == 0, snap


def passage_rows(lane: Gate) -> list[tuple[str, str | None, str | None]]:
    with sqlite3.connect(lane.tmp / "var" / "records.db") as db:
        return db.execute("SELECT id, outcome, ended_at FROM passages ORDER BY started_at"
                          ).fetchall()


def assert_centre_complete(lane: Gate) -> None:
    report = lane.central.report()["sites"][support.SITE]
    assert report["gap_count"] == 0, report


def test_truck_arriving_while_gate_edge_is_down_is_decided_once_it_is_back(lane: Gate) -> None:
    lane.start_controller()
    lane.start_edge()
    lane.publish_declarations(DECLARATION)
    time.sleep(2)
    lane.stop_edge(signal.SIGKILL)
    # gate-edge is dead: the controller sees the truck and keeps the barrier down.
    lane.drive({**TRUCK, "duration_s": 90, "approach_s": 3}, seal=None, lead_s=0.5)
    assert lane.board.wait_for(lambda s: s["inputs"]["entry_loop"], timeout=20)
    time.sleep(2)
    assert lane.board.snapshot()["open_rises"] == 0
    lane.start_edge()
    lane.seal.read("ES00012345", "I")
    [msg] = lane.wait_passages(1, timeout=60)
    assert decision(msg)["outcome"] == "open", lane.log("gate-edge")[-3000:]
    assert lane.board.wait_for(lambda s: s["passed"], timeout=30), lane.board.snapshot()
    assert lane.board.snapshot()["open_rises"] == 1
    assert_invariants(lane)
    assert_centre_complete(lane)


def test_gate_edge_killed_while_the_truck_passes_records_the_passage_once(lane: Gate) -> None:
    lane.start_controller()
    lane.start_edge()
    lane.publish_declarations(DECLARATION)
    time.sleep(2)
    # A long stop under the open barrier leaves time to kill and restart gate-edge.
    lane.drive(TRUCK, seal="ES00012345", stops=[[-1.0, 1.0], [6.0, 12.0]])
    [msg] = lane.wait_passages(1)
    assert decision(msg)["outcome"] == "open"
    lane.stop_edge(signal.SIGKILL)
    lane.start_edge()
    assert lane.board.wait_for(lambda s: s["passed"], timeout=40), lane.board.snapshot()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and passage_rows(lane)[0][2] is None:
        time.sleep(0.2)
    rows = passage_rows(lane)
    assert len(rows) == 1, rows          # one truck, one passage, across the restart
    assert rows[0][2] is not None, "the restarted gate-edge followed the passage to its end"
    time.sleep(1)
    assert len(lane.passages()) == 1
    assert lane.board.snapshot()["open_rises"] == 1
    assert_invariants(lane)
    assert_centre_complete(lane)


def test_broker_outage_loses_no_passage(lane: Gate, durable_broker: Mosquitto) -> None:
    lane.start_controller()
    lane.start_edge()
    lane.publish_declarations(DECLARATION)
    time.sleep(2)
    durable_broker.stop()
    lane.drive(TRUCK, seal="ES00012345")
    assert lane.board.wait_for(lambda s: len(s["passed"]) == 1, timeout=40)
    lane.wait_idle()
    lane.drive({**TRUCK, "tractor_plate": "51C67890"}, seal=None, turn_back_after_s=4.0)
    assert lane.board.wait_for(lambda s: len(s["turned_back"]) == 1, timeout=40), \
        lane.board.snapshot()
    time.sleep(1)
    assert len(passage_rows(lane)) == 2
    durable_broker.start()
    got = lane.wait_passages(2, timeout=60)
    assert [decision(m)["outcome"] for m in got] == ["open", "refer"]
    assert lane.central.report()["sites"][support.SITE]["duplicates"] >= 0
    assert_invariants(lane)
    assert_centre_complete(lane)


def test_gate_controller_killed_mid_passage_keeps_the_lane_safe(lane: Gate) -> None:
    lane.start_controller()
    lane.start_edge()
    lane.publish_declarations(DECLARATION)
    time.sleep(2)
    lane.drive(TRUCK, seal="ES00012345", stops=[[-1.0, 1.0], [6.0, 6.0]])
    [msg] = lane.wait_passages(1)
    assert decision(msg)["outcome"] == "open"
    assert lane.board.wait_for(lambda s: s["arm"] > 0.9, timeout=20)
    proc = lane.procs.pop("gate-controller")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    time.sleep(1)
    lane.start_controller()          # what systemd's Restart=always does
    assert lane.board.wait_for(lambda s: s["passed"], timeout=40), lane.board.snapshot()
    assert lane.board.wait_for(lambda s: s["arm"] < 0.05, timeout=30), lane.board.snapshot()
    assert_invariants(lane)
    lane.check_alive()               # gate-edge reconnected instead of dying with the link
    assert "gate-controller board1 connected" in lane.log("gate-edge").split("lost")[-1]
