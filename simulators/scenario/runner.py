"""Drives a scenario's timeline through a running lab and checks what the gate did.

The runner only does what the world does to a checkpoint: a truck appears in the camera's
picture (``POST /trucks``: pixels, never text handed to gate-edge), drives onto the relay
board's loops (``add_vehicle``), rolls past the seal readers (bytes on their ptys), and faults
happen (broker stopped, board glitches, noise, camera cut). Then it collects the evidence from
outside gate-edge:

* the barrier: every lane event of each gate-controller, read as a second IPC client
  (``vehicle_present`` → ``opening``/``referred``/``held`` → ``tailgating`` → ``cleared``);
* the decision: what the central simulator received and exported (passages with lane, reads,
  decision and reasons, verified signatures, de-duplicated).

Trucks of a lane are paired with the controller's ``vehicle_present`` events in order (a
tailgater never gets its own event: that is the point of it), and a decision with its event by
the ``passage_id`` the controller echoes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.domain.plates import fold_confusables, normalize_plate
from gate_controller.client import ControllerClient
from simulators.relay_board.control import ControlClient
from simulators.scenario.lab import Lab, LaneRig, read_jsonl
from simulators.scenario.model import (
    BrokerOutage,
    CameraCut,
    RelayBoardFault,
    SealNoise,
    SealType,
    TruckSpec,
)

log = logging.getLogger(__name__)

#: front of a vehicle at the entry loop's far edge (metres, arm at 0): simulators/relay_board/model.py
ENTRY_LOOP_START_M = -6.0
#: where a forward vehicle waits for the arm
STOP_LINE_M = -0.5


# -- evidence collection ---------------------------------------------------------------------
class LaneWatcher:
    """A second IPC client of one gate-controller, keeping every lane event it sends."""

    def __init__(self, rig: LaneRig) -> None:
        self.rig = rig
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{rig.lane.id}", daemon=True)

    def start(self) -> LaneWatcher:
        """Connect and start collecting (returns once connected)."""
        self._client = ControllerClient(self.rig.controller_socket)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop collecting and disconnect."""
        self._stop.set()
        self._thread.join(timeout=3)
        with contextlib.suppress(OSError):
            self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._client.next_event(timeout=0.2)
            except TimeoutError:
                if self._client.closed.is_set():
                    self._reconnect()
                continue
            with self._lock:
                self.events.append(event)

    def _reconnect(self) -> None:
        """The controller restarted or dropped us; events in between are lost, so say so."""
        log.warning("lost the IPC connection to %s; reconnecting", self.rig.board)
        time.sleep(0.5)
        with contextlib.suppress(OSError):
            self._client = ControllerClient(self.rig.controller_socket)

    def snapshot(self) -> list[dict[str, Any]]:
        """Events so far, in arrival order."""
        with self._lock:
            return list(self.events)


def _seal_command(path: Path, line: str) -> str:
    """One command to a seal simulator's control socket; returns its answer line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(line.encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    text = answer.decode().strip()
    if not text.startswith("ok"):
        raise RuntimeError(f"seal simulator {path.name}: {line!r} -> {text}")
    return text


def _post_json(url: str, body: Any) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",  # noqa: S310
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as answer:  # noqa: S310 (loopback only)
        return json.loads(answer.read() or b"null")


# -- results ----------------------------------------------------------------------------------
@dataclass
class TruckOutcome:
    """What happened to one truck, and where it differs from its ``expect``."""

    index: int
    truck: TruckSpec
    event_id: str | None = None
    passage_id: str | None = None
    decision: str | None = None
    reasons: list[str] = field(default_factory=list)
    plates_read: list[str] = field(default_factory=list)
    trailers_read: list[str] = field(default_factory=list)
    opened: bool = False
    passed: bool | None = None
    tailgating: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every expectation held."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary (written to results.json in the lab directory)."""
        return {"truck": self.truck.name, "lane": self.truck.lane, "at": self.truck.at,
                "expected": self.truck.expect.decision.value, "decision": self.decision,
                "reasons": self.reasons, "plates_read": self.plates_read,
                "trailers_read": self.trailers_read,
                "barrier_opened": self.opened, "passed": self.passed,
                "tailgating": self.tailgating, "passage_id": self.passage_id,
                "event_id": self.event_id, "ok": self.ok, "problems": self.problems}


@dataclass
class ScenarioResult:
    """The outcome of a whole run: per truck, plus what the centre saw."""

    name: str
    lab_dir: Path
    trucks: list[TruckOutcome]
    received_passages: int = 0
    seq_gaps: list[int] = field(default_factory=list)
    fault_log: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lane_faults: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every truck as expected and nothing lost on the way to the centre."""
        return all(t.ok for t in self.trucks) and not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {"scenario": self.name, "ok": self.ok, "lab_dir": str(self.lab_dir),
                "received_passages": self.received_passages, "seq_gaps": self.seq_gaps,
                "faults": self.fault_log, "problems": self.problems,
                "lane_faults": self.lane_faults,
                "trucks": [t.as_dict() for t in self.trucks]}


# -- the timeline ------------------------------------------------------------------------------
@dataclass(order=True)
class _Action:
    at: float
    seq: int
    what: str = field(compare=False)
    run: Callable[[], None] = field(compare=False)


def time_to_entry_loop(truck: TruckSpec, position_m: float = ENTRY_LOOP_START_M) -> float:
    """Seconds from the truck's arrival until its front reaches ``position_m`` (the entry loop)."""
    m = truck.motion
    distance = max(0.0, m.start_distance_m + position_m)
    pauses = sum(seconds for pos, seconds in m.stops if pos <= position_m)
    return distance / m.speed_mps + pauses


class ScenarioRunner:
    """Plays one scenario in a started :class:`Lab` and judges the outcome."""

    def __init__(self, lab: Lab, *, speed: float = 1.0,
                 echo: Callable[[str], None] | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.lab = lab
        self.spec = lab.spec
        self.speed = speed
        self.echo = echo or (lambda _msg: None)
        self.fault_log: list[str] = []
        self.errors: list[str] = []
        self.watchers: dict[str, LaneWatcher] = {}

    def run(self) -> ScenarioResult:
        """Play the timeline, wait for every truck to finish, compare with the expectations."""
        self.watchers = {lane: LaneWatcher(rig).start() for lane, rig in self.lab.rigs.items()}
        try:
            actions = self._plan()
            t0 = time.monotonic()
            for action in actions:
                delay = t0 + action.at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.echo(f"[{time.monotonic() - t0:6.1f}s] {action.what}")
                try:
                    action.run()
                except (OSError, RuntimeError, ValueError) as exc:
                    message = f"{action.what}: {exc}"
                    log.error("scenario action failed: %s", message)
                    self.errors.append(message)
            last = actions[-1].at if actions else 0.0
            self._wait_done(deadline=t0 + last + self.spec.defaults.settle_s)
            return self._judge()
        finally:
            for watcher in self.watchers.values():
                watcher.stop()

    def _plan(self) -> list[_Action]:
        actions: list[_Action] = []
        counter = iter(range(1_000_000))

        def add(at: float, what: str, run: Callable[[], None]) -> None:
            actions.append(_Action(at / self.speed, next(counter), what, run))

        for truck in self.spec.trucks:
            rig = self.lab.rigs[truck.lane]
            add(truck.at, f"{truck.lane}: truck '{truck.name}' ({truck.tractor_plate}) arrives",
                functools.partial(self._arrive, truck, rig))
            if truck.seals:
                when = truck.at + max(0.0, time_to_entry_loop(truck)
                                      - self.spec.defaults.seal_lead_s) * self.speed
                add(when, f"{truck.lane}: seals of '{truck.name}' read",
                    functools.partial(self._read_seals, truck, rig))
        for fault in self.spec.faults:
            self._plan_fault(fault, add)
        return sorted(actions)

    def _plan_fault(self, fault: Any, add: Callable[[float, str, Callable[[], None]], None]) -> None:
        lab = self.lab
        if isinstance(fault, BrokerOutage):
            add(fault.at, "fault: MQTT broker stops", lambda: self._fault(lab.broker_down, "broker down"))
            add(fault.at + fault.duration_s, "fault cleared: MQTT broker back",
                lambda: self._fault(lab.broker_up, "broker up"))
        elif isinstance(fault, RelayBoardFault):
            rig = lab.rigs[fault.lane]
            add(fault.at, f"fault: {fault.lane} relay board {fault.fault}",
                lambda: self._fault(lambda: self._relay(rig, fault, on=True),
                                    f"{fault.lane} relay {fault.fault} on"))
            if fault.duration_s is not None:
                add(fault.at + fault.duration_s, f"fault cleared: {fault.lane} relay board "
                    f"{fault.fault}", lambda: self._fault(lambda: self._relay(rig, fault, on=False),
                                                        f"{fault.lane} relay {fault.fault} off"))
        elif isinstance(fault, SealNoise):
            rig = lab.rigs[fault.lane]
            path = rig.eseal_control if fault.reader == "eseal" else rig.bolt_control
            assert path is not None
            add(fault.at, f"fault: {fault.bytes} noise bytes on {fault.reader}-{fault.lane}",
                lambda: self._fault(lambda: _seal_command(path, f"noise {fault.bytes}") and None,
                                    f"{fault.reader}-{fault.lane} noise"))
        elif isinstance(fault, CameraCut):
            add(fault.at, f"fault: camera of {fault.lane} cut",
                lambda: self._fault(lambda: lab.camera_down(fault.lane), f"camera {fault.lane} cut"))
            add(fault.at + fault.duration_s, f"fault cleared: camera of {fault.lane} back",
                lambda: self._fault(lambda: lab.camera_up(fault.lane), f"camera {fault.lane} back"))

    def _fault(self, action: Callable[[], object], label: str) -> None:
        action()
        self.fault_log.append(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {label}")

    @staticmethod
    def _relay(rig: LaneRig, fault: RelayBoardFault, *, on: bool) -> None:
        client = ControlClient(rig.relay_control)
        try:
            if fault.fault == "power_loss":
                client.call("power", on=not on)
            elif on:
                client.call("inject", fault=fault.fault, target=fault.target)
            else:
                client.call("clear", fault=fault.fault)
        finally:
            client.close()

    def _arrive(self, truck: TruckSpec, rig: LaneRig) -> None:
        """The truck enters the camera's view and drives towards the entry loop."""
        # In the picture, the truck grows until it stands at the stop line, then stays there
        # camera_tail_s after reaching the entry loop: the size a real camera sees it at.
        approach_s = time_to_entry_loop(truck, STOP_LINE_M)
        view_s = max(time_to_entry_loop(truck) + self.spec.defaults.camera_tail_s, approach_s + 1)
        _post_json(rig.camera_url + "/trucks", truck.camera_truck(view_s, approach_s))
        m = truck.motion
        turn_back = m.turn_back_after_s or self.spec.defaults.turn_back_after_s
        client = ControlClient(rig.relay_control)
        try:
            client.call("add_vehicle", length_m=m.length_m, speed_mps=m.speed_mps,
                        start_distance_m=m.start_distance_m,
                        stops=[list(s) for s in m.stops], turn_back_after_s=turn_back)
            if m.tailgate_follower:
                follower = m.follower_speed_mps or max(0.5, round(m.speed_mps * 2 / 3, 2))
                client.call("add_vehicle", length_m=m.follower_length_m, speed_mps=follower,
                            tailgate=True, turn_back_after_s=turn_back)
        finally:
            client.close()

    @staticmethod
    def _read_seals(truck: TruckSpec, rig: LaneRig) -> None:
        """The trailer rolls past the readers: each seal is read (a few times, as readers do)."""
        for seal in truck.seals:
            if seal.type is SealType.ESEAL:
                assert rig.eseal_control is not None
                status = {"intact": "I", "opened": "O", "tampered": "T"}[seal.status]
                extra = f" bat={seal.battery}" if seal.battery is not None else ""
                for _ in range(2):
                    _seal_command(rig.eseal_control, f"read {seal.id} {status}{extra}")
            else:
                assert rig.bolt_control is not None
                _seal_command(rig.bolt_control, f"read {seal.id}")

    # -- waiting and judging ----------------------------------------------------------------
    def _lane_trucks(self) -> dict[str, list[tuple[int, TruckSpec]]]:
        lanes: dict[str, list[tuple[int, TruckSpec]]] = {lane: [] for lane in self.lab.rigs}
        for i, truck in enumerate(sorted(self.spec.trucks, key=lambda t: t.at)):
            lanes[truck.lane].append((i, truck))
        return lanes

    def _wait_done(self, deadline: float) -> None:
        """Until every truck has left its lane and every decided passage reached the centre."""
        self.echo("waiting for the last trucks to clear and the centre to receive everything")
        while time.monotonic() < deadline:
            if self._all_done():
                return
            time.sleep(0.5)
        self.echo("settle time over; judging what happened so far")

    def _all_done(self) -> bool:
        received = self._received_passages()
        for lane, trucks in self._lane_trucks().items():
            events = self.watchers[lane].snapshot()
            present = [e for e in events if e.get("event") == "vehicle_present"]
            cleared = {e.get("event_id") for e in events if e.get("event") == "cleared"}
            if len(present) < len(trucks) or any(e["event_id"] not in cleared for e in present):
                return False
            decided = {e.get("passage_id") for e in events
                       if e.get("event") in ("opening", "referred", "held") and e.get("passage_id")}
            if any(pid not in received for pid in decided):
                return False
        return True

    def _received_passages(self) -> dict[str, dict[str, Any]]:
        """passage_id -> the first automatic decision the centre received for it."""
        out: dict[str, dict[str, Any]] = {}
        for msg in read_jsonl(self.lab.received_path):
            if msg.get("type") != "passage":
                continue
            body = msg.get("body") or {}
            pid = body.get("passage_id")
            if not pid:
                continue
            auto = (body.get("decision") or {}).get("decided_by") == "auto"
            if pid not in out or (auto and (out[pid].get("decision") or {}).get("decided_by")
                                  != "auto"):
                out[pid] = body
        return out

    def _judge(self) -> ScenarioResult:
        received = self._received_passages()
        claimed: set[str] = set()
        outcomes: list[TruckOutcome] = []
        for lane, trucks in self._lane_trucks().items():
            events = self.watchers[lane].snapshot()
            paired = pair_events(trucks, events, received)
            for n, (index, truck) in enumerate(trucks):
                out = TruckOutcome(index=index, truck=truck)
                if n in paired:
                    out.event_id = paired[n]
                    self._barrier(out, events)
                self._decision(out, received, claimed)
                _compare(out, self.spec.trucks)
                outcomes.append(out)
        outcomes.sort(key=lambda o: o.index)
        msgs = read_jsonl(self.lab.received_path)
        seqs = {int(m["seq"]) for m in msgs if isinstance(m.get("seq"), int)}
        gaps = [s for s in range(1, max(seqs, default=0) + 1) if s not in seqs]
        problems = list(self.errors)
        if gaps:
            problems.append(f"the centre is missing outbox seq(s) {gaps[:10]}: messages lost")
        faults = [(lane, e) for lane, watcher in self.watchers.items()
                  for e in watcher.snapshot() if e.get("event") == "fault"]
        lane_faults = [f"{e.get('ts')} {lane}: {e.get('code')} {e.get('detail') or ''}".rstrip()
                       for lane, e in faults]
        problems += judge_lane_faults(self.spec.expect_lane_faults,
                                      [(lane, str(e.get("code"))) for lane, e in faults])
        return ScenarioResult(self.spec.name, self.lab.dir, outcomes, len(received), gaps,
                              self.fault_log, problems, lane_faults)

    @staticmethod
    def _barrier(out: TruckOutcome, events: list[dict[str, Any]]) -> None:
        mine = [e for e in events if e.get("event_id") == out.event_id]
        for event in mine:
            kind = event.get("event")
            if event.get("passage_id") and not out.passage_id:
                out.passage_id = event["passage_id"]
            if kind == "opening":
                out.opened = True
            elif kind == "tailgating":
                out.tailgating = True
            elif kind == "cleared":
                out.passed = bool(event.get("passed"))

    @staticmethod
    def _decision(out: TruckOutcome, received: dict[str, dict[str, Any]],
                  claimed: set[str]) -> None:
        body = received.get(out.passage_id or "")
        if body is None:
            # No decision reached gate-controller (or it was never told): find the passage the
            # centre got for this lane and plate, so the table still says what gate-edge decided.
            plate = fold_confusables(out.truck.tractor_plate)
            for pid, candidate in received.items():
                seen = [fold_confusables(r.get("text", "")) for r in
                        (candidate.get("reads") or {}).get("tractor", [])]
                if pid not in claimed and candidate.get("lane") == out.truck.lane and plate in seen:
                    body, out.passage_id = candidate, pid
                    break
        if body is None:
            return
        claimed.add(str(out.passage_id))
        decision = body.get("decision") or {}
        out.decision = decision.get("outcome")
        out.reasons = [str(r) for r in decision.get("reasons", [])]
        reads: dict[str, Any] = body.get("reads") or {}
        out.plates_read = [normalize_plate(str(r.get("text", ""))) for r in reads.get("tractor", [])]
        out.trailers_read = [normalize_plate(str(r.get("text", "")))
                             for r in reads.get("trailer", [])]


def pair_events(trucks: Sequence[tuple[int, TruckSpec]], events: Sequence[dict[str, Any]],
                received: dict[str, dict[str, Any]]) -> dict[int, str]:
    """Which ``vehicle_present`` event is which truck of one lane: position -> event id.

    In order, as trucks queue in a lane; but when the passage decided for an event read the
    tractor plate of exactly one waiting truck, that truck it is, and the trucks before it were
    never seen (trucks cannot overtake in a lane). So a truck the controller missed (a board
    fault) does not shift every later truck onto the wrong event.
    """
    passage_of: dict[str, str] = {}
    for event in events:
        if event.get("event_id") and event.get("passage_id"):
            passage_of.setdefault(event["event_id"], event["passage_id"])
    waiting = list(range(len(trucks)))
    pairs: dict[int, str] = {}
    for event in (e for e in events if e.get("event") == "vehicle_present"):
        if not waiting:
            break
        body = received.get(passage_of.get(event["event_id"], ""), {})
        read = {fold_confusables(str(r.get("text", "")))
                for r in (body.get("reads") or {}).get("tractor", [])}
        by_plate = [n for n in waiting if fold_confusables(trucks[n][1].tractor_plate) in read]
        n = by_plate[0] if len(by_plate) == 1 else waiting[0]
        pairs[n] = event["event_id"]
        waiting = [m for m in waiting if m > n]   # no overtaking in a lane: earlier ones were missed
    return pairs


def judge_lane_faults(expected: Sequence[str], seen: Sequence[tuple[str, str]]) -> list[str]:
    """Problems with the lane faults gate-controller reported, as (lane, code) pairs.

    A lane in fault stops automating until an officer resets it, so a fault the scenario did
    not provoke is a failure even when every truck's decision was right.
    """
    problems = [f"lane {lane} went into fault {code}, which the scenario does not expect "
                f"(list it under expect_lane_faults if a fault of the scenario provokes it)"
                for lane, code in seen if code not in expected]
    codes = {code for _, code in seen}
    problems += [f"expected lane fault {code} was never reported" for code in expected
                 if code not in codes]
    return problems


def _compare(out: TruckOutcome, trucks: Sequence[TruckSpec] = ()) -> None:
    """Fill ``out.problems`` with every way the outcome differs from the truck's ``expect``.

    Besides the expectations, a plate read that belongs to *another* truck of the scenario is
    always a problem: the passage was given a read of a truck that is not this one (a stale
    frame, or a read carried over from the truck before), which could open the barrier on the
    wrong declaration.
    """
    exp = out.truck.expect
    own = {out.truck.tractor_plate, out.truck.trailer_plate}
    others = {p: t.name for t in trucks if t is not out.truck
              for p in (t.tractor_plate, t.trailer_plate) if p and p not in own}
    for text in dict.fromkeys(out.plates_read + out.trailers_read):
        if text in others:
            out.problems.append(f"read {text} of truck '{others[text]}' attached to this passage")
    if out.event_id is None:
        out.problems.append("gate-controller never reported this truck at the entry loop")
    if out.decision is None:
        out.problems.append("the centre received no decision for this truck")
    elif out.decision != exp.decision.value:
        out.problems.append(f"decision {out.decision}, expected {exp.decision.value}")
    missing = [r.value for r in exp.reasons if r.value not in out.reasons]
    if out.decision is not None and missing:
        out.problems.append(f"reasons lack {', '.join(missing)}")
    if out.decision is not None and exp.no_other_reasons:
        extra = sorted(set(out.reasons) - {r.value for r in exp.reasons})
        if extra:
            out.problems.append(f"unexpected reasons {', '.join(extra)}")
    if exp.plate_read and out.decision is not None:
        plate = out.truck.tractor_plate
        if plate not in out.plates_read:
            shown = ", ".join(out.plates_read) or "nothing"
            out.problems.append(f"tractor plate read as {shown}, truck shows {plate}")
    if out.event_id is not None:
        if out.opened != exp.opens():
            out.problems.append("barrier opened" if out.opened else "barrier never opened")
        if out.passed is None:
            out.problems.append("the truck never cleared the lane")
        elif out.passed != exp.crosses():
            out.problems.append("truck passed the arm" if out.passed else "truck did not pass")
        want_tail = exp.tailgating if exp.tailgating is not None \
            else out.truck.motion.tailgate_follower
        if out.tailgating != want_tail:
            out.problems.append("TAILGATING reported" if out.tailgating
                                else "no TAILGATING reported")
