"""Decision → open-coil latency through the IPC socket and Modbus RTU on a pty at 115200 baud.

The controller runs as its own process (``python -m gate_controller run``), exactly as under
systemd; the simulated board runs in this process on a pseudo-terminal, pacing its answers at
115200 baud. Each cycle: the simulator holds the entry loop occupied (a truck waiting), the
controller announces ``vehicle_present``, this script sends an ``open`` decision with a fresh
token and measures until the board's barrier-open relay switches on; then the loop is released,
the lane closes and goes idle, and the next cycle starts.

Prints p50/p95/p99 and ends with one JSON line (target p95 ≤ 50 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gate_controller.client import ControllerClient  # noqa: E402
from simulators.relay_board import BoardModel, RelayBoardServer  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--poll", type=float, default=0.02, help="controller poll interval, s")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-gc-"))
    model = BoardModel(travel_time_s=0.02)
    sim = RelayBoardServer(model, baudrate=115200, link=tmp / "relay").start()
    coil_on = threading.Event()
    coil_on_at = [0.0]
    original = model.write_coil

    def watched(address: int, value: bool) -> bool:
        was = model.coils[address] if 0 <= address < len(model.coils) else False
        ok = original(address, value)
        if address == model.coil_map.barrier_open and value and not was:
            coil_on_at[0] = time.perf_counter()
            coil_on.set()
        return ok

    model.write_coil = watched  # type: ignore[method-assign]
    config = tmp / "gate-edge.yaml"
    config.write_text(
        "relay_boards:\n"
        f"  - name: bench\n    lane: L1\n    port: {tmp / 'relay'}\n    baudrate: 115200\n"
        f"    timeout_s: 0.2\n    retries: 2\n    inter_frame_gap_ms: 1.0\n"
        f"    ipc_socket: {tmp / 'ctl.sock'}\n"
        "    timing:\n      clear_settle_s: 0.05\n      arm_travel_timeout_s: 2.0\n"
        f"      heartbeat_timeout_s: 2.0\n      poll_interval_s: {args.poll}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gate_controller", "run", "-c", str(config), "-b", "bench",
         "--log-level", "WARNING"], cwd=REPO, env=env)
    latencies: list[float] = []
    try:
        for _ in range(200):
            if (tmp / "ctl.sock").exists():
                break
            time.sleep(0.05)
        with ControllerClient(tmp / "ctl.sock") as client:
            client.heartbeat()
            started = time.perf_counter()
            for i in range(args.cycles):
                client.heartbeat()
                sim.inject("stuck_loop", "entry_loop")  # a truck waits on the entry loop
                present = client.next_event(lambda e: e["event"] == "vehicle_present", 5)
                coil_on.clear()
                t0 = time.perf_counter()
                client.send({"type": "decision", "action": "open",
                             "event_id": present["event_id"], "passage_id": f"PB{i:06d}",
                             "token": f"bench-token-{i:012d}", "issued_at": time.time()})
                if not coil_on.wait(2):
                    raise RuntimeError(f"cycle {i}: open coil never came on")
                latencies.append((coil_on_at[0] - t0) * 1000)
                sim.clear("stuck_loop")  # the truck has gone
                client.next_event(lambda e: e["event"] == "state" and e["state"] == "idle", 5)
            elapsed = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        sim.stop()

    p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
    print(f"decision -> open coil on, {len(latencies)} cycles over IPC + Modbus RTU "
          f"(pty, 115200 baud), {elapsed:.1f} s")
    print(f"  min {min(latencies):.2f} ms  p50 {p50:.2f} ms  p95 {p95:.2f} ms  "
          f"p99 {p99:.2f} ms  max {max(latencies):.2f} ms  mean {statistics.mean(latencies):.2f}")
    print(json.dumps({"bench": "gate_controller_command_to_coil", "cycles": len(latencies),
                      "baud": 115200, "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
                      "p99_ms": round(p99, 2), "target_p95_ms": 50}))


if __name__ == "__main__":
    main()
