"""Bad input on both sides: IPC lines from gate-edge, and noise on the serial line."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from gate_controller.client import ControllerClient
from gate_controller.ipc import MAX_LINE_BYTES, ProtocolError, parse_line
from simulators.relay_board import RelayBoardServer
from tests.gate_controller.conftest import Heartbeats, InProcessController, board_config

BAD_LINES = [
    (b"{not json\n", "bad_json"),
    (b"[1, 2, 3]\n", "not_object"),
    (b'{"type": "launch_missiles"}\n', "unknown_type"),
    (b'{"type": "decision", "action": "open"}\n', "invalid"),
    (b'{"type": "decision", "action": "wave", "event_id": "E1", "passage_id": "P1"}\n', "invalid"),
    (b'{"type": "officer", "command": "open", "officer": "", "reason": "x"}\n', "invalid"),
    (b'{"type": "heartbeat", "extra": 1}\n', "invalid"),
    (b'{"type": "heartbeat", "v": 2}\n', "invalid"),
    (b"\xff\xfe\n", "bad_encoding"),
    (b"[" * 5000 + b"]" * 5000 + b"\n", "bad_json"),  # nesting that exhausts the parser's stack
]


@pytest.mark.parametrize(("line", "code"), BAD_LINES)
def test_parse_line_names_the_problem(line: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_line(line)
    assert info.value.code == code
    assert info.value.message


def test_bad_ipc_lines_are_rejected_and_controller_keeps_running(
    sim: RelayBoardServer, client: ControllerClient, heartbeats: Heartbeats,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    for line, code in BAD_LINES:
        client.send_raw(line)
        reply = client.errors.get(timeout=5)
        assert reply["ok"] is False and reply["error"] == code, (line, reply)
    assert "rejected line" in caplog.text
    # unknown officer command name is also just refused
    answer = client.request({"type": "officer", "command": "dance", "officer": "o", "reason": "r"})
    assert answer["ok"] is False and answer["error"] == "invalid"
    # still alive, still safe
    status = client.status()
    assert status["state"] == "idle" and status["outputs"]["barrier_close"]
    assert sim.snapshot()["coils"]["barrier_open"] is False


def test_oversized_line_is_rejected(client: ControllerClient) -> None:
    client.send_raw(b'{"type":"heartbeat","sender":"' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n')
    reply = client.errors.get(timeout=5)
    assert reply["error"] == "line_too_long"


def test_expired_and_reused_tokens_over_ipc(sim: RelayBoardServer, client: ControllerClient,
                                            heartbeats: Heartbeats) -> None:
    sim.add_vehicle(length_m=10, speed_mps=4, start_distance_m=8)
    present = client.next_event(lambda e: e["event"] == "vehicle_present")
    client.next_event(lambda e: e["event"] == "state" and e["state"] == "deciding")
    base = {"type": "decision", "action": "open", "event_id": present["event_id"],
            "passage_id": "PBAD1"}
    expired = client.request({**base, "token": "expired-token-000001",
                              "issued_at": time.time() - 3600})
    assert expired["error"] == "token_expired"
    reused = client.request({**base, "token": "expired-token-000001", "issued_at": time.time()})
    assert reused["error"] == "token_reused"
    time.sleep(0.5)
    assert sim.snapshot()["coils"]["barrier_open"] is False and sim.snapshot()["arm"] == 0.0
    good = client.request({**base, "token": "fresh-token-00000002", "issued_at": time.time()})
    assert good["ok"], good
    again = client.request({**base, "token": "fresh-token-00000002", "issued_at": time.time()})
    assert again["error"] == "token_reused"


def test_noise_on_the_serial_line_is_survived(sim: RelayBoardServer, tmp_path: Path) -> None:
    cfg = board_config(sim, tmp_path).model_copy(update={"retries": 3})
    ctl = InProcessController(cfg).start()
    try:
        with ControllerClient(ctl.socket) as client:
            for _ in range(20):
                sim.spray(24)  # unsolicited noise between requests
                time.sleep(0.03)
            sim.inject("garbage", 0.15)  # noise in front of some answers
            time.sleep(1.5)
            sim.clear("garbage")
            time.sleep(0.3)
            polls = client.status()["polls"]
            time.sleep(0.3)
            status = client.status()
            assert status["polls"] > polls  # still polling the board
            assert status["state"] in ("idle", "fault"), status
            if status["state"] == "fault":  # only the line can have been blamed
                assert status["fault"] == "SERIAL_LOST"
            snap = sim.snapshot()
            assert snap["sprayed"] == 20 * 24 and snap["garbled"] > 0  # the noise was real
            assert sim.snapshot()["coils"]["barrier_open"] is False
            assert sim.snapshot()["collisions"] == []
    finally:
        ctl.stop()


def test_board_silent_then_back(sim: RelayBoardServer, client: ControllerClient) -> None:
    sim.inject("no_response")
    fault = client.next_event(lambda e: e["event"] == "fault", timeout=5)
    assert fault["code"] == "SERIAL_LOST" and "did not answer" in fault["detail"]
    answer = client.request({"type": "officer", "command": "reset", "officer": "o1",
                             "reason": "line checked"})
    assert answer["error"] == "board_unreachable"
    sim.clear()
    time.sleep(0.3)
    answer = client.request({"type": "officer", "command": "reset", "officer": "o1",
                             "reason": "line checked"})
    assert answer["ok"], answer
    assert client.status()["state"] == "idle"


def test_crc_errors_fault_the_lane(sim: RelayBoardServer, client: ControllerClient) -> None:
    sim.inject("crc_errors")
    fault = client.next_event(lambda e: e["event"] == "fault", timeout=5)
    assert fault["code"] == "SERIAL_LOST" and "bad CRC or garbage" in fault["detail"]
    status = json.dumps(client.status())
    assert '"state": "fault"' in status


def test_adapter_unplugged_and_replugged(tmp_path: Path) -> None:
    """The pty disappears (USB adapter pulled), then a board shows up again at the same name."""
    from simulators.relay_board import BoardModel

    link = tmp_path / "relay1"
    first = RelayBoardServer(BoardModel(travel_time_s=0.4), link=link).start()
    cfg = board_config(first, tmp_path)
    ctl = InProcessController(cfg).start()
    second = None
    try:
        with ControllerClient(ctl.socket) as client:
            assert client.status()["state"] == "idle"
            first.stop()  # unplugged: the pty and the udev-like name are gone
            fault = client.next_event(lambda e: e["event"] == "fault", timeout=10)
            assert fault["code"] == "SERIAL_LOST"
            second = RelayBoardServer(BoardModel(travel_time_s=0.4), link=link).start()
            deadline = time.monotonic() + 10
            answer: dict[str, object] = {}
            while time.monotonic() < deadline:
                answer = client.request({"type": "officer", "command": "reset",
                                         "officer": "o1", "reason": "adapter replaced"})
                if answer["ok"]:
                    break
                time.sleep(0.3)
            assert answer["ok"], answer
            assert client.status()["state"] == "idle"
            assert second.wait_for(lambda s: s["coils"]["barrier_close"], 5)
    finally:
        ctl.stop()
        if second is not None:
            second.stop()


def test_late_answers_are_never_taken_for_another_request(
    sim: RelayBoardServer, tmp_path: Path,
) -> None:
    """A slow board answers after the master timed out and retried: the late answer to a
    discrete-input read must never be read as the coils (a false READBACK_MISMATCH fault)."""
    from gate_controller.board import BoardError, ModbusRelayBoard

    board = ModbusRelayBoard(board_config(sim, tmp_path))
    sim.inject("late_answers", 0.3)
    truth = sim.snapshot()
    wrong: list[str] = []
    timeouts = 0
    try:
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            try:
                coils, inputs = board.read_outputs(), board.read_inputs()
            except BoardError:
                timeouts += 1
                continue
            if any(getattr(coils, f) != truth["coils"][f] for f in truth["coils"]):
                wrong.append(f"coils {coils}")
            if inputs.arm_down is not True or inputs.entry_loop:
                wrong.append(f"inputs {inputs}")
    finally:
        board.close()
    assert sim.snapshot()["late"] > 0, "the fault was never exercised"
    assert board.stale > 0, "no late answer reached the driver: the test proves nothing"
    assert wrong == []
