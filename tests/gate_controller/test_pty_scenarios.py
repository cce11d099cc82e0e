"""Random scenarios over the real pty (fewer than in-process: they run in real time).

The same kind of traffic, decisions and faults as the property test, but through Modbus RTU on
a pseudo-terminal and the IPC socket; the board-side monitors check the invariants.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from gate_controller.client import ControllerClient
from simulators.relay_board import BoardModel, RelayBoardServer
from tests.gate_controller.conftest import Heartbeats, InProcessController, board_config

#: an arm may keep descending over a just-arrived vehicle until the controller's next poll:
#: one poll interval plus, on a loaded machine, one timed-out request (0.3 s) and its retry
REACTION_S = 0.5


@pytest.mark.parametrize("seed", range(5))
def test_random_scenario_over_pty(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    sim = RelayBoardServer(BoardModel(travel_time_s=0.4), link=tmp_path / "relay", seed=seed)
    sim.start()
    ctl = InProcessController(board_config(sim, tmp_path, stuck_loop_s=4.0)).start()
    accepted_opens = 0
    try:
        with ControllerClient(ctl.socket) as client:
            hb = Heartbeats(client).start()
            deadline = time.monotonic() + 6.0
            while time.monotonic() < deadline:
                r = rng.random()
                if r < 0.25 and len(sim.snapshot()["vehicles"]) < 3:
                    sim.add_vehicle(length_m=rng.uniform(3, 16), speed_mps=rng.uniform(3, 9),
                                    direction=rng.choice(["forward"] * 3 + ["reverse"]),
                                    tailgate=rng.random() < 0.3, start_distance_m=7.0,
                                    stops=[(rng.uniform(-2, 3), rng.uniform(0.2, 1.0))]
                                    if rng.random() < 0.3 else None)
                elif r < 0.5:
                    status = client.status()
                    eid = status["event_id"] if rng.random() < 0.8 else "E-WRONG"
                    issued = time.time() - (0 if rng.random() < 0.8 else 3600)
                    answer = client.request({
                        "type": "decision", "action": "open", "event_id": eid or "E-NONE",
                        "passage_id": f"P{seed}x{rng.randrange(10**6)}",
                        "token": f"tok{seed}x{rng.randrange(10**12):012d}", "issued_at": issued})
                    accepted_opens += bool(answer["ok"])
                elif r < 0.55:
                    answer = client.request({"type": "officer", "command": "open",
                                             "officer": "o1", "reason": "scenario"})
                    accepted_opens += bool(answer["ok"])
                elif r < 0.6:
                    sim.inject(rng.choice(["no_response", "arm_jam", "crc_errors"]))
                elif r < 0.7:
                    sim.clear()
                    client.request({"type": "officer", "command": "reset", "officer": "o1",
                                    "reason": "scenario"})
                elif r < 0.75:
                    hb.stop() if rng.random() < 0.5 else None
                time.sleep(rng.uniform(0.05, 0.5))
            hb.stop()
            # re-opens over a vehicle, and a reset that re-asserts an arm it found up, also
            # raise the open coil; each is an event the controller reports
            reopens = sum(1 for e in _drain(client) if e["event"] == "reopened"
                          or (e["event"] == "resumed" and e["arm"] == "up"))
        snap = sim.snapshot()
        assert snap["collisions"] == []
        assert snap["max_close_over_occupied_s"] <= REACTION_S, snap
        assert not (snap["coils"]["barrier_open"] and snap["coils"]["barrier_close"])
        assert snap["open_rises"] <= accepted_opens + reopens, (snap, accepted_opens)
    finally:
        ctl.stop()
        sim.stop()


def _drain(client: ControllerClient) -> list[dict[str, object]]:
    out = []
    while not client.events.empty():
        out.append(client.events.get())
    return out
