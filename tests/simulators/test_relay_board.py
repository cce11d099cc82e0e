"""The relay-board simulator: physics, wire protocol on a real pty, control socket, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial
from pymodbus.client import ModbusSerialClient

from simulators.relay_board import BoardModel, ControlClient, ControlServer, RelayBoardServer

REPO = Path(__file__).resolve().parents[2]


def test_arm_travels_and_limits_follow() -> None:
    m = BoardModel(travel_time_s=2.0)
    assert m.sensor_states()["arm_down"] and not m.sensor_states()["arm_up"]
    m.write_coil(m.coil_map.barrier_open, True)
    m.advance(1.0)
    s = m.sensor_states()
    assert not s["arm_down"] and not s["arm_up"] and m.arm == pytest.approx(0.5)
    m.advance(1.1)
    assert m.sensor_states()["arm_up"]
    m.write_coil(m.coil_map.barrier_open, False)
    m.advance(5)  # both coils off: the arm stays where it is
    assert m.sensor_states()["arm_up"]


def test_driver_waits_at_stop_line_then_passes_over_loops_and_beam() -> None:
    m = BoardModel(travel_time_s=1.0)
    v = m.add_vehicle(length_m=5, speed_mps=5, start_distance_m=10)
    seen = set()
    for _ in range(100):
        m.advance(0.05)
        seen |= {k for k, on in m.sensor_states().items() if on and k.endswith(("loop", "cell"))}
    assert v.pos == pytest.approx(-0.5)  # waiting at the stop line, arm down
    assert seen == {"entry_loop", "exit_loop"}
    m.write_coil(m.coil_map.barrier_open, True)
    for _ in range(200):
        m.advance(0.05)
        if m.sensor_states()["photocell"]:
            seen.add("photocell")
    assert "photocell" in seen and m.passed == [v.id] and m.collisions == []


def test_stop_and_go_and_turn_back() -> None:
    m = BoardModel()
    a = m.add_vehicle(length_m=4, speed_mps=4, stops=[(-10.0, 2.0)], start_distance_m=12)
    m.advance(1.0)
    pos = a.pos
    m.advance(1.0)
    assert a.pos == pytest.approx(pos)  # paused
    b = BoardModel()
    v = b.add_vehicle(turn_back_after_s=1.0, start_distance_m=5)
    for _ in range(400):
        b.advance(0.05)
    assert b.turned_back == [v.id]


def test_arm_lowered_onto_vehicle_is_recorded_as_collision() -> None:
    m = BoardModel(travel_time_s=0.5)
    m.write_coil(m.coil_map.barrier_open, True)
    m.advance(1)
    m.add_vehicle(length_m=8, speed_mps=2, stops=[(2.0, 30.0)], start_distance_m=3)
    for _ in range(60):
        m.advance(0.05)
    m.write_coil(m.coil_map.barrier_open, False)
    m.write_coil(m.coil_map.barrier_close, True)
    for _ in range(20):
        m.advance(0.05)
    assert m.collisions and m.max_close_over_occupied_s > 0.4


def test_power_loss_drops_relays_but_master_death_does_not() -> None:
    m = BoardModel()
    m.write_coil(m.coil_map.barrier_open, True)
    m.set_power(False)
    assert not m.responding
    m.set_power(True)
    assert not m.coil("barrier_open")


def test_modbus_over_pty_and_faults(tmp_path: Path) -> None:
    with RelayBoardServer(BoardModel(travel_time_s=0.2), link=tmp_path / "ttyRELAY",
                          slave_id=7) as sim:
        assert Path(sim.pty_path).exists() and (tmp_path / "ttyRELAY").is_symlink()
        client = ModbusSerialClient(str(tmp_path / "ttyRELAY"), baudrate=115200, timeout=0.2,
                                    retries=0)
        assert client.connect()
        try:
            assert client.write_coil(0, True, device_id=7).bits[0] is True
            assert client.read_coils(0, count=5, device_id=7).bits[:5] == [True] + [False] * 4
            time.sleep(0.4)
            bits = client.read_discrete_inputs(0, count=5, device_id=7).bits[:5]
            assert bits == [False, False, False, True, False]  # arm up
            assert client.read_coils(100, count=5, device_id=7).isError()  # illegal address
            with pytest.raises(Exception, match="No response"):
                client.read_coils(0, count=5, device_id=8)  # another board: silence
            sim.inject("no_response")
            with pytest.raises(Exception, match="No response"):
                client.read_coils(0, count=5, device_id=7)
            sim.clear()
            sim.inject("crc_errors")
            with pytest.raises(Exception, match="No response"):
                client.read_coils(0, count=5, device_id=7)
            sim.clear()
            # garbage from the master is skipped; the board stays usable
            assert client.send(b"\x00\xff\x13garbage\x01") > 0
            time.sleep(0.1)
            assert client.read_coils(0, count=1, device_id=7).bits[0] is True
            assert sim.snapshot()["bad_frames"] >= 1
        finally:
            client.close()
    assert not (tmp_path / "ttyRELAY").exists()


def test_control_socket(tmp_path: Path) -> None:
    sim = RelayBoardServer(BoardModel()).start()
    ctl = ControlServer(sim, tmp_path / "sim.sock").start()
    try:
        c = ControlClient(tmp_path / "sim.sock")
        vid = c.call("add_vehicle", length_m=10, speed_mps=3, stops=[[1.0, 2.0]])["vehicle_id"]
        assert vid == 1
        c.call("inject", fault="stuck_loop", target="exit_loop")
        state = c.call("state")["state"]
        assert state["inputs"]["exit_loop"] and state["faults"] == {"stuck_loop": "exit_loop"}
        c.call("power", on=False)
        assert c.call("state")["state"]["powered"] is False
        c.call("clear")
        assert c.call("state")["state"]["faults"] == {}
        with pytest.raises(RuntimeError, match="unknown fault"):
            c.call("inject", fault="meteor")
        with pytest.raises(RuntimeError, match="unknown cmd"):
            c.call("teleport")
        with pytest.raises(RuntimeError, match="unknown keys"):
            c.call("add_vehicle", wings=2)
        c.close()
    finally:
        ctl.stop()
        sim.stop()


def test_gate_sim_relay_board_cli(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators.cli", "relay-board", "--travel-time", "0.2",
         "--link", str(tmp_path / "relay"), "--control", str(tmp_path / "ctl.sock")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["pty"].startswith("/dev/pts/") and info["port"] == str(tmp_path / "relay")
        port = serial.Serial(info["port"], 115200, timeout=0.5)
        port.close()
        c = ControlClient(tmp_path / "ctl.sock")
        assert c.call("state")["state"]["arm"] == 0.0
        c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == 0
