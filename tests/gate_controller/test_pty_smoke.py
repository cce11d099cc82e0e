"""A whole passage over a real pty: simulator ↔ Modbus RTU ↔ controller ↔ IPC."""

from __future__ import annotations

import secrets
import time

from gate_controller.client import ControllerClient
from simulators.relay_board import RelayBoardServer


def token() -> str:
    return secrets.token_urlsafe(18)


def test_truck_passes_with_token(sim: RelayBoardServer, client: ControllerClient,
                                 heartbeats: object) -> None:
    vid = sim.add_vehicle(length_m=12, speed_mps=6)
    present = client.next_event(lambda e: e["event"] == "vehicle_present")
    client.next_event(lambda e: e["event"] == "state" and e["state"] == "deciding")
    answer = client.request({"type": "decision", "action": "open", "event_id": present["event_id"],
                             "passage_id": "01PASSAGE1", "token": token(),
                             "issued_at": time.time()})
    assert answer["ok"], answer
    client.next_event(lambda e: e["event"] == "state" and e["state"] == "passing")
    cleared = client.next_event(lambda e: e["event"] == "cleared", timeout=15)
    assert cleared["passed"] is True and cleared["passage_id"] == "01PASSAGE1"
    assert cleared["direction"] == "forward"
    client.next_event(lambda e: e["event"] == "state" and e["state"] == "idle", timeout=10)
    snap = sim.snapshot()
    assert vid in snap["passed"] or any(v["id"] == vid and v["passed_arm"]
                                        for v in snap["vehicles"])
    assert snap["collisions"] == []
    assert snap["coils"]["barrier_close"] is True and snap["coils"]["barrier_open"] is False
