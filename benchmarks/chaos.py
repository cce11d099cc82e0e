"""Chaos run: simulated traffic through the whole gate while faults are injected at random.

The rig is the one of tests/edge/daemon (Mosquitto with persistence, the central simulator,
a relay board on a pty with a real ``gate-controller``, the MJPEG camera, an e-seal reader on a
pty and ``gate-edge run``). Distinct cleared trucks (and some unknown ones) drive through one
after another; before each truck, with probability ``--fault-rate``, one fault from this list:

- ``kill_edge``: SIGKILL of gate-edge, restarted after a moment (what systemd does);
- ``kill_controller``: SIGKILL of gate-controller, restarted;
- ``broker_down``: Mosquitto stopped for a few trucks, then started again;
- ``serial_garbage``: random bytes sprayed on the Modbus line and noise on the seal line;
- ``seal_unplug``: the e-seal reader's USB cable pulled and plugged back;
- ``camera_cut``: the camera's HTTP server stopped for a few seconds;
- ``disk_full``: gate-edge's storage (its own small tmpfs, as root) filled to the last byte
  for a few seconds while the next truck arrives (off, with the reason, where no tmpfs can be
  mounted).

A lane that went into ``fault`` waits for an officer, as on a real lane: before each truck the
script looks at gate-controller's status and, when the lane is in fault, resets it the way an
officer at the console would (the fault codes are counted and printed). A truck that still
found its lane in fault is counted apart from trucks whose passage went missing.

At the end every record is checked: each truck that reached the loop has exactly one passage
in records.db; the central simulator received every passage (after de-duplication, seq without
gaps); the audit chain verifies; the simulated board saw no collision, never a barrier coming
down on a vehicle, and no opening without a decision of gate-edge or an officer.

Run: python benchmarks/chaos.py [--trucks 60] [--fault-rate 0.3] [--seed 1]
     python benchmarks/chaos.py --trucks 1000 --minutes 30     # the 30-minute soak
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_lane_latency import fleet

from simulators.central.broker import Mosquitto
from tests.edge.daemon.gate import Gate
from tests.edge.sync import support
from tests.reliability.disk import DiskUnavailable, fill, small_disk, truncate_wal

FAULTS = ("kill_edge", "kill_controller", "broker_down", "serial_garbage", "seal_unplug",
          "camera_cut", "disk_full")
STORAGE_MB = 64   # the storage tmpfs: records, cache and a few thousand evidence images


def inject(gate: Gate, broker: Mosquitto, fault: str, rng: random.Random) -> None:
    if fault == "kill_edge":
        gate.stop_edge(signal.SIGKILL)
        time.sleep(rng.uniform(0.5, 3))
        gate.start_edge()
    elif fault == "kill_controller":
        proc = gate.procs.pop("gate-controller")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(rng.uniform(0.5, 2))
        gate.start_controller()
    elif fault == "broker_down":
        broker.stop()
    elif fault == "serial_garbage":
        gate.board.spray(64)
        gate.seal.noise(64)
    elif fault == "seal_unplug":
        gate.seal.unplug()
        time.sleep(rng.uniform(0.5, 3))
        gate.seal.replug()
    elif fault == "camera_cut":
        gate.cut_camera(rng.uniform(1, 4))
    elif fault == "disk_full":
        truncate_wal(gate.records_path)
        filler = fill(gate.storage.parent, 0)
        # freed a few seconds later, while the truck waits at the shut barrier
        threading.Timer(rng.uniform(3, 8), filler.unlink).start()


def officer_reset(gate: Gate) -> str | None:
    """If the lane is in fault, reset it as an officer would; returns the fault code."""
    from gate_controller.client import ControllerClient
    try:
        with ControllerClient(gate.tmp / "controller-board1.sock") as client:
            status = client.status()
            if status["state"] != "fault":
                return None
            code = str(status.get("fault"))
            for _ in range(10):   # a reset is refused until the board reads well again
                answer = client.request({"type": "officer", "command": "reset",
                                         "officer": "chaos", "reason": "chaos run: fault "
                                         "seen before the next truck"})
                if answer["ok"]:
                    break
                time.sleep(0.5)
            return code
    except (OSError, TimeoutError, KeyError):
        return None   # the controller is restarting: it comes back without a fault


def lane_state(gate: Gate) -> str:
    from gate_controller.client import ControllerClient
    try:
        with ControllerClient(gate.tmp / "controller-board1.sock") as client:
            return str(client.status()["state"])
    except (OSError, TimeoutError, KeyError):
        return "unknown"


def passage_rows(gate: Gate) -> list[tuple[str, str | None]]:
    db = sqlite3.connect(gate.records_path)
    try:
        return db.execute("SELECT id, outcome FROM passages ORDER BY started_at").fetchall()
    finally:
        db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trucks", type=int, default=60, help="at most this many trucks")
    ap.add_argument("--minutes", type=float, default=None,
                    help="stop sending trucks after this long (a soak: e.g. 30)")
    ap.add_argument("--fault-rate", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--faults", default=",".join(FAULTS),
                    help=f"comma-separated subset of {','.join(FAULTS)}")
    ap.add_argument("--keep", type=Path, default=None,
                    help="work in this directory and keep it (logs, records) for a post-mortem")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    faults: Counter[str] = Counter()
    resets: Counter[str] = Counter()
    at_faulted_lane = 0
    chosen = tuple(f for f in args.faults.split(",") if f in FAULTS)
    if not chosen:
        ap.error(f"--faults: none of {args.faults!r} is one of {FAULTS}")
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        keys = support.make_keys(workdir)
        storage: Path | None = None
        with contextlib.ExitStack() as stack:
            if "disk_full" in chosen:
                try:
                    storage = stack.enter_context(small_disk(workdir / "disk", STORAGE_MB))
                    storage = storage / "gate-edge"
                except DiskUnavailable as exc:
                    print(f"disk_full is off: {exc}", file=sys.stderr)
                    chosen = tuple(f for f in chosen if f != "disk_full")
            broker = stack.enter_context(Mosquitto(workdir / "mqtt", persistence=True))
            gate = Gate(workdir, broker, keys, storage_dir=storage, min_free_mb=10)
            try:
                gate.start_controller()
                gate.start_edge()
                trucks = fleet(args.trucks)
                # One truck in six is unknown to the centre: it is referred and turns back.
                known = [(d, t, s) for i, (d, t, s) in enumerate(trucks) if i % 6 != 5]
                gate.publish_declarations(*(d for d, _, _ in known))
                time.sleep(3)
                started = time.monotonic()
                broker_down_left = 0
                arrived = 0
                for i, (_, truck, seal) in enumerate(trucks):
                    if args.minutes and time.monotonic() - started > args.minutes * 60:
                        break
                    if i and i % 10 == 0:
                        print(f"  {i} trucks, {sum(faults.values())} faults, "
                              f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
                    if broker_down_left and (broker_down_left := broker_down_left - 1) == 0:
                        broker.start()
                    if rng.random() < args.fault_rate:
                        fault = rng.choice(chosen)
                        if fault == "broker_down" and broker_down_left:
                            fault = "serial_garbage"
                        faults[fault] += 1
                        inject(gate, broker, fault, rng)
                        if fault == "broker_down":
                            broker_down_left = rng.randint(2, 4)
                    code = officer_reset(gate)
                    if code is not None:
                        resets[code] += 1
                    rows_before = len(passage_rows(gate))
                    gate.drive({**truck, "duration_s": 10, "approach_s": 1.5}, seal=seal,
                               lead_s=3.0, start_distance_m=1.0, speed_mps=4.0, stops=[],
                               turn_back_after_s=15.0)
                    arrived += 1
                    time.sleep(1.0)
                    faulted = lane_state(gate) == "fault"
                    gate.wait_idle(timeout=90)
                    if faulted and len(passage_rows(gate)) == rows_before:
                        at_faulted_lane += 1  # an officer's truck, not an automatic passage
                if broker_down_left:
                    broker.start()
                elapsed = time.monotonic() - started
                time.sleep(5)
                rows = passage_rows(gate)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and len(gate.passages()) < len(rows):
                    time.sleep(0.5)
                received = gate.passages()
                report = gate.central.report()["sites"][support.SITE]
                snap = gate.board.snapshot()
                audit = subprocess.run([sys.executable, "-m", "edge", "audit", "verify", "-c",
                                        str(gate.config)], capture_output=True, text=True)
                gate.check_alive()
                edge_log = gate.log("gate-edge")
            finally:
                gate.close()
    received_ids = {m["body"]["passage_id"] for m in received}
    # a passage may rightly send a second, different decision (a clock-refused open becomes a
    # referral, docs/protocols.md); a duplicate is the same decision of a passage sent again
    # under a new key (the centre already drops equal keys)
    duplicates = len(received) - len({
        (m["body"]["passage_id"], json.dumps({k: m["body"]["decision"].get(k) for k in
                                              ("outcome", "reasons", "decided_by")}))
        for m in received})
    recorded_ids = {r[0] for r in rows}
    lost = len(recorded_ids - received_ids)
    missing_trucks = max(0, arrived - at_faulted_lane - len(rows))
    extra_passages = max(0, len(rows) - arrived)
    violations = len(snap["collisions"]) + (1 if snap["max_close_over_occupied_s"] > 0 else 0)
    opened = sum(1 for r in rows if r[1] == "open")
    print(f"trucks: {arrived} in {elapsed:.0f} s ({arrived / elapsed * 3600:.0f}/hour); "
          f"passages recorded {len(rows)} (open {opened}); centre received {len(received)}")
    print(f"faults injected: {sum(faults.values())} {dict(faults)}")
    print(f"lane faults reset by the officer: {sum(resets.values())} {dict(resets)}; trucks "
          f"that found the lane in fault (left to the officer): {at_faulted_lane}")
    print(f"lost at the centre: {lost}; trucks without a passage: {missing_trucks}; "
          f"extra passages: {extra_passages}; duplicates after de-duplication: "
          f"{duplicates} (broker redeliveries absorbed: "
          f"{report['duplicates']}); seq gaps: {report['gap_count']}")
    print(f"barrier: collisions {len(snap['collisions'])}, closed over a vehicle "
          f"{snap['max_close_over_occupied_s']} s, rises {snap['open_rises']}, "
          f"passed {len(snap['passed'])}, turned back {len(snap['turned_back'])}")
    # what the full disk did: saves refused (passage or its ending), and saves that got through
    full_refusals = edge_log.count("is full (")
    print(f"full disk: {full_refusals} save(s) refused and retried; "
          f"{edge_log.count('saved after')} passage(s) saved once space was back")
    print(f"audit chain: {'verified' if audit.returncode == 0 else 'BROKEN'} "
          f"({audit.stdout.strip() or audit.stderr.strip()})")
    print(json.dumps({
        "bench": "chaos", "trucks": arrived, "faults": sum(faults.values()),
        "records_checked": len(rows), "lost": lost, "target_lost": 0,
        "trucks_without_passage": missing_trucks, "target_trucks_without_passage": 0,
        "officer_resets": sum(resets.values()), "trucks_at_faulted_lane": at_faulted_lane,
        "extra_passages": extra_passages, "full_disk_save_refusals": full_refusals,
        "duplicates": duplicates, "target_duplicates": 0,
        "seq_gaps": report["gap_count"], "invariant_violations": violations,
        "target_invariant_violations": 0, "audit_ok": audit.returncode == 0,
        "trucks_per_hour": round(arrived / elapsed * 3600)}))


if __name__ == "__main__":
    main()
