"""kill -9 of the controller with the arm up over a truck: the board holds, the restart is safe."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from gate_controller.client import ControllerClient
from simulators.relay_board import RelayBoardServer
from tests.gate_controller.conftest import (
    Heartbeats,
    board_config,
    spawn_controller,
    wait_path,
    write_yaml,
)


def test_kill9_with_vehicle_under_arm(sim: RelayBoardServer, tmp_path: Path) -> None:
    cfg = board_config(sim, tmp_path)
    config_file = write_yaml(cfg, tmp_path / "gate-edge.yaml")
    sock = Path(cfg.socket_path())
    proc = spawn_controller(config_file)
    restarted = None
    try:
        wait_path(sock)
        with ControllerClient(sock) as client:
            hb = Heartbeats(client).start()
            sim.add_vehicle(length_m=14, speed_mps=3, stops=[(3.0, 6.0)], start_distance_m=8)
            present = client.next_event(lambda e: e["event"] == "vehicle_present")
            client.next_event(lambda e: e["event"] == "state" and e["state"] == "deciding")
            answer = client.request({"type": "decision", "action": "open",
                                     "event_id": present["event_id"], "passage_id": "PK9",
                                     "token": "kill9-token-0123456789", "issued_at": time.time()})
            assert answer["ok"], answer
            client.next_event(lambda e: e["event"] == "state" and e["state"] == "passing")
            hb.stop()
        assert sim.wait_for(lambda s: s["inputs"]["photocell"] and s["arm"] == 1.0, 10)

        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        time.sleep(1.0)
        snap = sim.snapshot()
        assert snap["coils"]["barrier_open"] is True, "board must hold its outputs"
        assert snap["coils"]["barrier_close"] is False
        assert snap["arm"] == 1.0 and snap["inputs"]["photocell"]

        sock.unlink(missing_ok=True)
        restarted = spawn_controller(config_file)
        wait_path(sock)
        with ControllerClient(sock) as client:
            status = client.status()
            assert status["state"] == "passing" and status["arm"] == "up", status
            assert status["outputs"]["barrier_open"] and not status["outputs"]["barrier_close"]
            assert sim.snapshot()["coils"]["barrier_open"] is True
            client.next_event(lambda e: e["event"] == "state" and e["state"] == "idle",
                              timeout=25)
        snap = sim.snapshot()
        assert snap["collisions"] == []
        assert snap["arm"] == 0.0 and snap["coils"]["barrier_close"] is True
        assert sim.wait_for(lambda s: len(s["passed"]) == 1, 10)
    finally:
        for p in (proc, restarted):
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=10)
            if p is not None and p.stdout is not None:
                p.stdout.close()
