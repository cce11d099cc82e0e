"""Soak: 10,000 random lane scenarios; how many kept every safety invariant.

Each scenario runs the real ControlCore/Lane in simulated time against the BoardModel (see
simulators/relay_board/harness.py): random trucks (length, speed, direction, stop-and-go,
turning back, tailgating), valid and invalid open tokens, refer/hold decisions, officer
commands, gate-edge crashes, and board faults (silence, CRC errors, garbage, stuck loop, arm
jam, welded relay, stuck limit switch, power loss). The harness checks after every poll: the
close coil never on over an occupied lane, the arm never touching a vehicle, the open coil
never rising without a valid token, an officer or a safety re-open, every manifest fault
ending in ``fault`` with the alarm up. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FAULTS = ["no_response", "crc_errors", "garbage", "stuck_loop", "arm_jam", "relay_stuck",
          "limit_stuck_down", "power_loss"]


def scenario(seed: int) -> tuple[int, list[str], int]:
    """Run one scenario; returns (seed, violations, vehicles that passed)."""
    import logging

    logging.disable(logging.CRITICAL)
    from simulators.relay_board.harness import LaneHarness

    rng = random.Random(seed)
    h = LaneHarness()
    tokens = 0
    last_token = None
    for _ in range(rng.randint(10, 30)):
        r = rng.random()
        if r < 0.2:
            if len(h.model.vehicles) < 4:
                h.model.add_vehicle(
                    length_m=rng.uniform(2, 18), speed_mps=rng.uniform(1, 8),
                    direction="reverse" if rng.random() < 0.15 else "forward",
                    stops=[(rng.uniform(-8, 6), rng.uniform(0.2, 4))] if rng.random() < 0.3
                    else None,
                    turn_back_after_s=rng.uniform(1, 8) if rng.random() < 0.15 else None,
                    tailgate=rng.random() < 0.25, start_distance_m=8.0)
        elif r < 0.4:
            tokens += 1
            token = f"soak{seed}x{tokens:012d}"
            kind = rng.choice(["valid"] * 4 + ["expired", "reused", "wrong", "future"])
            issued = h.wall
            event_id = None
            if kind == "expired":
                issued -= h.timing.token_ttl_s + 1
            elif kind == "future":
                issued += 60
            elif kind == "reused" and last_token:
                token = last_token
            elif kind == "wrong":
                event_id = "E-WRONG"
            last_token = token
            h.decide("open", token=token, issued_at=issued, event_id=event_id)
        elif r < 0.45:
            h.decide(rng.choice(["refer", "hold"]))
        elif r < 0.55:
            h.officer(rng.choice(["open", "close", "reset", "manual", "auto", "silence"]))
        elif r < 0.6:
            h.edge_alive = not h.edge_alive
        elif r < 0.65:
            fault = rng.choice(FAULTS)
            target: object = True
            if fault == "stuck_loop":
                target = rng.choice(["entry_loop", "exit_loop"])
            elif fault == "relay_stuck":
                target = rng.choice(["barrier_open", "green_light", "red_light", "buzzer"])
            h.inject(fault, target)
        elif r < 0.7:
            h.clear_faults()
        else:
            h.run(rng.uniform(0.05, 6.0))
    h.run(2.0)
    return seed, h.violations, len(h.model.passed)


def main() -> None:
    parser = argparse.ArgumentParser(description="gate-controller soak")
    parser.add_argument("--scenarios", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()
    seeds = [args.seed + i for i in range(args.scenarios)]
    started = time.perf_counter()
    held = 0
    passed = 0
    failures: list[tuple[int, list[str]]] = []
    with multiprocessing.Pool(args.workers) as pool:
        for seed, violations, n_passed in pool.imap_unordered(scenario, seeds, chunksize=50):
            passed += n_passed
            if violations:
                failures.append((seed, violations))
            else:
                held += 1
    elapsed = time.perf_counter() - started
    print(f"{held}/{args.scenarios} scenarios held every invariant "
          f"({passed} vehicles passed the arm) in {elapsed:.1f} s")
    for seed, violations in failures[:10]:
        print(f"  seed {seed}: {violations[:3]}")
    print(json.dumps({"bench": "gate_controller_soak", "scenarios": args.scenarios,
                      "held": held, "violated": len(failures), "vehicles_passed": passed,
                      "seconds": round(elapsed, 1), "target_held": args.scenarios}))


if __name__ == "__main__":
    main()
