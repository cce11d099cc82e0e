"""In-process, simulated-time harness: the real ControlCore and Lane against a BoardModel.

The property tests and the soak benchmark run thousands of scenarios; over a pty each would
take real seconds. Here the very same ``ControlCore``/``Lane`` code is stepped in simulated
time against the same ``BoardModel`` physics the pty simulator runs, with ``ModelBoard``
standing in for the Modbus driver (its failures raise the driver's own exception types).
The harness also keeps an independent oracle and records every safety violation it sees.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from gate_controller.board import COIL_FIELDS, BoardError, ReadbackMismatch, write_phases
from gate_controller.config import LaneTiming, RelayBoardConfig
from gate_controller.core import VERIFY_INTERVAL_S, ControlCore
from gate_controller.ipc import DecisionMsg, HeartbeatMsg, OfficerMsg
from gate_controller.lane import TOKEN_MAX_FUTURE_S, ArmCommand, Inputs, LaneState, Outputs
from simulators.relay_board.model import BoardModel

COMM_FAULTS = ("no_response", "crc_errors", "garbage")


class ModelBoard:
    """BoardIO over a BoardModel in the same process (no serial line)."""

    def __init__(self, model: BoardModel) -> None:
        self.model = model
        self.errors = 0

    def _check_line(self) -> None:
        if not self.model.responding or any(self.model.faults.get(f) is True for f in COMM_FAULTS):
            self.errors += 1
            raise BoardError("no valid response from the board (simulated line fault)")

    def read_inputs(self) -> Inputs:
        """Sensors as the board reads them."""
        self._check_line()
        return Inputs(**self.model.sensor_states())

    def read_outputs(self) -> Outputs:
        """Coils as the board holds them."""
        self._check_line()
        return Outputs(**{f: self.model.coil(f) for f in COIL_FIELDS})

    def write_outputs(self, desired: Outputs, current: Outputs | None) -> None:
        """Write all coils (like FC15) and read them back."""
        for phase in write_phases(desired, current):
            self._check_line()
            for name in COIL_FIELDS:
                self.model.write_coil(getattr(self.model.coil_map, name), getattr(phase, name))
            if self.read_outputs() != phase:
                raise ReadbackMismatch("coil read-back mismatch (simulated stuck relay)")

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class Oracle:
    """What the harness believes independently of the lane's own bookkeeping."""

    presence: str | None = None
    authorized: bool = False
    held: bool = False
    used_tokens: set[str] = field(default_factory=set)
    last_heartbeat: float | None = None


class LaneHarness:
    """Steps one lane in simulated time and checks the safety invariants on every poll."""

    def __init__(
        self,
        timing: LaneTiming | None = None,
        *,
        travel_time_s: float = 1.0,
        start_wall: float = 1_800_000_000.0,
    ) -> None:
        self.timing = timing or LaneTiming(
            clear_settle_s=0.5, arm_travel_timeout_s=3.0, token_ttl_s=10.0,
            heartbeat_timeout_s=1.0, stuck_loop_s=20.0, poll_interval_s=0.05,
        )
        self.model = BoardModel(travel_time_s=travel_time_s)
        self.board = ModelBoard(self.model)
        self.config = RelayBoardConfig(name="sim", lane="L1", port="in-process", timing=self.timing)
        self.now = 100.0
        self.wall0 = start_wall
        ids = itertools.count(1)
        self.core = ControlCore(self.config, self.board, now=self.now, wall=self.wall,
                                id_factory=lambda: f"E{next(ids):06d}")
        self.oracle = Oracle()
        self.events: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.replies: list[dict[str, Any]] = []
        self.edge_alive = True
        self._next_hb = self.now
        self._fault_since: dict[str, float] = {}
        self._diverged_since: float | None = None
        self._absorb(self.core.start(self.now, self.wall))

    @property
    def wall(self) -> float:
        """Simulated wall clock (unix seconds)."""
        return self.wall0 + self.now

    @property
    def lane(self) -> Any:
        """The lane under test."""
        return self.core.lane

    # ------------------------------------------------------------------ driving
    def run(self, seconds: float) -> None:
        """Advance simulated time, polling at the configured interval."""
        step = self.timing.poll_interval_s
        end = self.now + seconds
        while self.now < end - 1e-9:
            if self.edge_alive and self.now >= self._next_hb:
                self.heartbeat()
                self._next_hb = self.now + self.timing.heartbeat_timeout_s / 3
            self.model.advance(step)
            self.now += step
            self._guarded(lambda: self.core.poll(self.now))

    def heartbeat(self) -> None:
        """gate-edge says it is alive."""
        self.oracle.last_heartbeat = self.now
        self._guarded(lambda: self.core.handle(HeartbeatMsg(type="heartbeat"), self.now,
                                               self.wall))

    def decide(self, action: str, *, event_id: str | None = None, token: str | None = None,
               issued_at: float | None = None, passage_id: str = "P1") -> dict[str, Any]:
        """Send a decision (defaults: for the current presence, issued now)."""
        msg = DecisionMsg(type="decision", action=action,
                          event_id=event_id or self.lane.presence_id or "E-none",
                          passage_id=passage_id, token=token,
                          issued_at=self.wall if issued_at is None else issued_at)
        valid = self._token_valid(msg) if action == "open" else None
        if action == "open" and token is not None:
            self.oracle.used_tokens.add(token)
        def accepted(result: dict[str, Any]) -> None:
            if action == "open":
                if not valid:
                    self.violations.append(f"t={self.now:.2f} accepted an invalid token: {msg}")
                self.oracle.authorized = True
            elif action == "hold":
                self.oracle.held = True

        return self._guarded(lambda: self.core.handle(msg, self.now, self.wall), accepted)

    def officer(self, command: str, officer: str = "off1") -> dict[str, Any]:
        """An officer command."""
        msg = OfficerMsg(type="officer", command=command,
                         officer=officer, reason="test")
        def accepted(result: dict[str, Any]) -> None:
            if command == "open":
                self.oracle.authorized = True
                self.oracle.held = False

        return self._guarded(lambda: self.core.handle(msg, self.now, self.wall), accepted)

    def inject(self, fault: str, target: Any = True) -> None:
        """Inject a board fault."""
        changed = self.model.faults.get(fault, None) != target
        self.model.inject(fault, target)
        if changed or fault not in self._fault_since:
            self._fault_since[fault] = self.now  # a new fault, or the same on another target

    def clear_faults(self) -> None:
        """Clear every board fault (power comes back)."""
        self.model.clear()
        self._fault_since.clear()

    # ------------------------------------------------------------------ checking
    def _token_valid(self, msg: DecisionMsg) -> bool:
        o = self.oracle
        fresh = msg.issued_at is not None and (
            self.wall - msg.issued_at <= self.timing.token_ttl_s
            and msg.issued_at <= self.wall + TOKEN_MAX_FUTURE_S
        )
        alive = o.last_heartbeat is not None and \
            self.now - o.last_heartbeat <= self.timing.heartbeat_timeout_s
        return bool(
            msg.token is not None and msg.token not in o.used_tokens and fresh and alive
            and o.presence is not None and msg.event_id == o.presence and not o.held
        )

    def _guarded(self, action: Any, on_ok: Any = None) -> Any:
        before = self.model.coil("barrier_open")
        result = action()
        events = self.core.events(self.wall)
        self._absorb(events)
        if on_ok is not None and isinstance(result, dict) and result.get("ok"):
            on_ok(result)
        after = self.model.coil("barrier_open")
        if after and not before:
            reopen = [e for e in events if e["event"] == "reopened"]
            if not self.oracle.authorized and not any(
                e["inputs"]["exit_loop"] or e["inputs"]["photocell"] for e in reopen
            ):
                self.violations.append(f"t={self.now:.2f} open coil rose without authorisation")
        self._check()
        if isinstance(result, dict):
            self.replies.append(result)
            return result
        return {}

    def _absorb(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            self.events.append(e)
            if e["event"] == "vehicle_present":
                self.oracle.presence = e["event_id"]
                self.oracle.authorized = False
                self.oracle.held = False
            elif e["event"] == "state" and e["state"] == "idle":
                self.oracle.presence = None
                self.oracle.authorized = False
                self.oracle.held = False

    def _check(self) -> None:
        lane, model, t = self.lane, self.model, self.now
        # judged on what the controller last read: a change since then is seen at the next
        # poll; what physically matters (the arm touching a vehicle) is checked just below
        occupied = lane.inputs.occupied
        line_ok = model.responding and not any(model.faults.get(f) for f in COMM_FAULTS)
        if model.coil("barrier_close") and occupied and line_ok \
                and "relay_stuck" not in model.faults:
            self.violations.append(f"t={t:.2f} close coil on while the lane is occupied")
        if model.collisions:
            self.violations.append(f"t={t:.2f} arm came down on a vehicle: {model.collisions}")
            model.collisions.clear()
        if model.coil("barrier_open") and model.coil("barrier_close"):
            self.violations.append(f"t={t:.2f} both motor coils on")
        in_fault = lane.state is LaneState.FAULT and "FAULT" in {a.value for a in lane.alarms}
        must_fault = self._fault_expected()
        if must_fault and not in_fault:
            self.violations.append(f"t={t:.2f} {must_fault} but lane is {lane.state.value}")

    def _fault_expected(self) -> str | None:
        model, lane, t = self.model, self.lane, self.now
        poll = self.timing.poll_interval_s
        for fault in (*COMM_FAULTS, "power_loss"):
            since = self._fault_since.get(fault)
            if since is not None and t - since > poll + 1e-6 and (
                fault != "power_loss" or not model.powered
            ):
                return f"line fault {fault} active"
        stuck = model.faults.get("stuck_loop")
        since = self._fault_since.get("stuck_loop")
        if stuck in ("entry_loop", "exit_loop") and since is not None \
                and t - since > self.timing.stuck_loop_s + 2 * poll:
            return f"{stuck} stuck for {t - since:.1f} s"
        jam = self._fault_since.get("arm_jam")
        if jam is not None and lane.arm is not ArmCommand.HOLD:
            moving_for = t - max(jam, lane.travel.since)
            target_reached = (lane.arm is ArmCommand.UP and model.arm >= 0.999) or (
                lane.arm is ArmCommand.DOWN and model.arm <= 0.001)
            if not target_reached and moving_for > self.timing.arm_travel_timeout_s + 2 * poll:
                return f"arm jammed for {moving_for:.1f} s while commanded {lane.arm.value}"
        coils = Outputs(**{f: model.coil(f) for f in COIL_FIELDS})
        if lane.state is LaneState.FAULT or coils == self.core.written:
            self._diverged_since = None
        elif self._diverged_since is None:
            self._diverged_since = t
        elif t - self._diverged_since > VERIFY_INTERVAL_S + 2 * poll:
            return f"board coils {coils} differ from what the controller wrote"
        if model.faults.get("limit_stuck_down") and model.arm >= 0.999 \
                and self._fault_since.get("limit_stuck_down", t) < t - poll - 1e-6:
            return "both limit switches active"
        return None
