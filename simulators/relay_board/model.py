"""Physics of one lane as a relay/IO board sees it: barrier arm, loops, photocell, vehicles.

Pure and clock-free (``advance(dt)``), so the Modbus server on a pty runs it in real time and
the property tests run it in simulated time; both see the same arm, loops and drivers.

Lane geometry along the driving axis (metres, x grows in the forward direction, arm at 0):

    entry loop [-6, -2]   stop line -0.5 (forward) / +0.5 (reverse)   photocell at 0
    exit loop [-1, 3]     the arm sweeps [-0.25, 0.25]

A vehicle occupies [front - length, front] (mirrored for reverse traffic). Drivers stop at the
stop line unless the arm is fully up (arm-up limit), keep a gap to the vehicle ahead (a
tailgater keeps a short one), and may pause (stop-and-go) or turn back. The board holds its
coils whatever happens to the master; only a power loss clears them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from gate_controller.board import INPUT_MAP_FIELD
from gate_controller.config import CoilMap, InputMap

ENTRY_LOOP = (-6.0, -2.0)
EXIT_LOOP = (-1.0, 3.0)
PHOTOCELL_X = 0.0
ARM_SWEEP = (-0.25, 0.25)
STOP_LINE = 0.5
START_DISTANCE = 20.0
GONE_DISTANCE = 12.0
#: below this arm position (0 down, 1 up) an arm over a vehicle touches it
ARM_CONTACT = 0.7

FAULTS = ("no_response", "crc_errors", "garbage", "late_answers", "stuck_loop", "arm_jam",
          "relay_stuck", "limit_stuck_down")


@dataclass
class Vehicle:
    """One simulated vehicle; positions are along its own direction of travel."""

    id: int
    length_m: float
    speed_mps: float
    direction: int  # +1 forward (entry loop first), -1 reverse
    pos: float  # front position in the vehicle's own frame: stop line at -STOP_LINE
    stops: list[tuple[float, float]] = field(default_factory=list)  # (front position, seconds)
    turn_back_after_s: float | None = None
    tailgate: bool = False
    waited_s: float = 0.0
    paused_s: float = 0.0
    turning_back: bool = False
    passed_arm: bool = False

    def span(self) -> tuple[float, float]:
        """Occupied interval in lane coordinates."""
        if self.direction > 0:
            return (self.pos - self.length_m, self.pos)
        return (-self.pos, -self.pos + self.length_m)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for the control API."""
        lo, hi = self.span()
        return {"id": self.id, "length_m": self.length_m, "speed_mps": self.speed_mps,
                "direction": "forward" if self.direction > 0 else "reverse",
                "span": [round(lo, 3), round(hi, 3)], "turning_back": self.turning_back,
                "passed_arm": self.passed_arm}


def _overlaps(span: tuple[float, float], zone: tuple[float, float]) -> bool:
    return span[0] < zone[1] and span[1] > zone[0]


class BoardModel:
    """The board's registers plus the lane physics behind them."""

    def __init__(
        self,
        coils: CoilMap | None = None,
        inputs: InputMap | None = None,
        *,
        travel_time_s: float = 2.0,
        n_coils: int = 8,
        n_inputs: int = 8,
    ) -> None:
        self.coil_map = coils or CoilMap()
        self.input_map = inputs or InputMap()
        self.travel_time_s = travel_time_s
        self.coils = [False] * max(n_coils, max(self.coil_map.model_dump().values()) + 1)
        self.n_inputs = max(n_inputs, max(self.input_map.model_dump().values()) + 1)
        self.arm = 0.0
        self.powered = True
        self.vehicles: list[Vehicle] = []
        self.faults: dict[str, Any] = {}
        self.collisions: list[dict[str, Any]] = []
        self.passed: list[int] = []
        self.turned_back: list[int] = []
        self.time = 0.0
        self.open_rises = 0
        self.max_close_over_occupied_s = 0.0
        self._close_over_occupied = 0.0
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ registers
    def coil(self, name: str) -> bool:
        """Coil by function name (barrier_open, ...)."""
        return self.coils[getattr(self.coil_map, name)]

    def write_coil(self, address: int, value: bool) -> bool:
        """Set a coil as a relay would; returns False for an address the board lacks."""
        if not 0 <= address < len(self.coils):
            return False
        stuck = self.faults.get("relay_stuck")
        if stuck is not None and address == getattr(self.coil_map, stuck, -1):
            return True  # the relay is welded: the write is acknowledged but nothing changes
        if value and not self.coils[address] and address == self.coil_map.barrier_open:
            self.open_rises += 1
        self.coils[address] = bool(value)
        return True

    def sensor_states(self) -> dict[str, bool]:
        """The five lane sensors as the board reads them."""
        spans = [v.span() for v in self.vehicles]
        states = {
            "entry_loop": any(_overlaps(s, ENTRY_LOOP) for s in spans),
            "exit_loop": any(_overlaps(s, EXIT_LOOP) for s in spans),
            "photocell": any(s[0] <= PHOTOCELL_X <= s[1] for s in spans),
            "arm_up": self.arm >= 0.999,
            "arm_down": self.arm <= 0.001,
        }
        stuck = self.faults.get("stuck_loop")
        if stuck in ("entry_loop", "exit_loop", "photocell"):
            states[stuck] = True
        if self.faults.get("limit_stuck_down"):
            states["arm_down"] = True
        return states

    def discrete_inputs(self) -> list[bool]:
        """Input register image (FC02)."""
        bits = [False] * self.n_inputs
        for name, value in self.sensor_states().items():
            bits[getattr(self.input_map, INPUT_MAP_FIELD[name])] = value
        return bits

    # ------------------------------------------------------------------ control
    def add_vehicle(
        self,
        *,
        length_m: float = 16.5,
        speed_mps: float = 3.0,
        direction: str = "forward",
        stops: list[tuple[float, float]] | None = None,
        turn_back_after_s: float | None = None,
        tailgate: bool = False,
        start_distance_m: float | None = None,
    ) -> Vehicle:
        """Queue a vehicle at the start of the lane; it drives as a careful driver would."""
        if not 0.5 <= length_m <= 30 or not 0.1 <= speed_mps <= 30:
            raise ValueError("length_m must be 0.5-30 and speed_mps 0.1-30")
        if direction not in ("forward", "reverse"):
            raise ValueError("direction must be 'forward' or 'reverse'")
        d = 1 if direction == "forward" else -1
        start = -(start_distance_m if start_distance_m is not None else START_DISTANCE)
        same_way = [v for v in self.vehicles if v.direction == d]
        if same_way:
            last_rear = min(v.pos - v.length_m for v in same_way)
            start = min(start, last_rear - (0.5 if tailgate else 2.0))
        vehicle = Vehicle(next(self._ids), length_m, speed_mps, d, start,
                          sorted(stops or []), turn_back_after_s, tailgate)
        self.vehicles.append(vehicle)
        return vehicle

    def inject(self, fault: str, target: Any = True) -> None:
        """Switch a fault on (see FAULTS); ``target`` names the loop or coil where needed."""
        if fault == "power_loss":
            self.set_power(False)
            return
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}, power_loss")
        if fault == "stuck_loop" and target is True:
            target = "entry_loop"
        if fault == "relay_stuck" and target is True:
            target = "barrier_open"
        self.faults[fault] = target

    def clear(self, fault: str | None = None) -> None:
        """Clear one fault, or all with None (power comes back too)."""
        if fault in (None, "power_loss"):
            self.set_power(True)
        if fault is None:
            self.faults.clear()
        else:
            self.faults.pop(fault, None)

    def set_power(self, on: bool) -> None:
        """Power loss clears every relay (a board restarts with its outputs off)."""
        if not on and self.powered:
            self.coils = [False] * len(self.coils)
        self.powered = on

    @property
    def responding(self) -> bool:
        """Whether the board answers on the bus at all."""
        return self.powered and "no_response" not in self.faults

    # ------------------------------------------------------------------ physics
    def advance(self, dt: float) -> None:
        """Move the arm and the vehicles by ``dt`` seconds."""
        if dt <= 0:
            return
        self.time += dt
        self._move_arm(dt)
        arm_up = self.arm >= 0.999
        ordered = sorted(self.vehicles, key=lambda v: -v.pos)
        ahead_rear: dict[int, float] = {}
        for v in ordered:
            limit = ahead_rear.get(v.direction)
            self._drive(v, dt, arm_up, limit)
            ahead_rear[v.direction] = v.pos - v.length_m
        self._check_collisions()
        self._monitor(dt)
        for v in list(self.vehicles):
            rear = v.pos - v.length_m
            if rear > GONE_DISTANCE:
                self.vehicles.remove(v)
                self.passed.append(v.id)
            elif v.turning_back and v.pos < -START_DISTANCE - 5:
                self.vehicles.remove(v)
                self.turned_back.append(v.id)

    def _monitor(self, dt: float) -> None:
        """Safety monitor seen from the board: how long the arm was driven down over a vehicle.

        An arm resting on its down limit with the close coil still on while a truck rolls up
        to the stop line is harmless (the controller releases the coil at its next poll);
        what counts is the arm actually descending while something is on the lane.
        """
        states = self.sensor_states()
        occupied = states["entry_loop"] or states["exit_loop"] or states["photocell"]
        if self.coil("barrier_close") and occupied and self.arm > 0.001:
            self._close_over_occupied += dt
            self.max_close_over_occupied_s = max(self.max_close_over_occupied_s,
                                                 self._close_over_occupied)
        else:
            self._close_over_occupied = 0.0

    def _move_arm(self, dt: float) -> None:
        if not self.powered or self.faults.get("arm_jam"):
            return
        up, down = self.coil("barrier_open"), self.coil("barrier_close")
        step = dt / self.travel_time_s
        if up and not down:
            self.arm = min(1.0, self.arm + step)
        elif down and not up:
            self.arm = max(0.0, self.arm - step)

    def _drive(self, v: Vehicle, dt: float, arm_up: bool, ahead_rear: float | None) -> None:
        if v.turning_back:
            v.pos -= v.speed_mps * dt
            return
        if v.stops and v.pos >= v.stops[0][0]:
            v.paused_s += dt
            if v.paused_s >= v.stops[0][1]:
                v.stops.pop(0)
                v.paused_s = 0.0
            return
        target = v.pos + v.speed_mps * dt
        if not v.passed_arm and not arm_up:
            target = min(target, -STOP_LINE)
        if ahead_rear is not None:
            target = min(target, ahead_rear - (0.5 if v.tailgate else 2.0))
        if target <= v.pos + 1e-9:
            v.waited_s += dt
            if v.turn_back_after_s is not None and v.waited_s >= v.turn_back_after_s \
                    and not v.passed_arm:
                v.turning_back = True
            return
        v.pos = target
        if v.pos > 0.3:
            v.passed_arm = True

    def _check_collisions(self) -> None:
        if self.arm >= ARM_CONTACT:
            return
        for v in self.vehicles:
            if _overlaps(v.span(), ARM_SWEEP) and not any(
                c["vehicle"] == v.id for c in self.collisions
            ):
                self.collisions.append({"vehicle": v.id, "t": round(self.time, 3),
                                        "arm": round(self.arm, 3)})

    def snapshot(self) -> dict[str, Any]:
        """Everything a scenario or test may want to assert on."""
        return {
            "time": round(self.time, 3),
            "arm": round(self.arm, 3),
            "powered": self.powered,
            "coils": {n: self.coil(n) for n in self.coil_map.model_dump()},
            "inputs": self.sensor_states(),
            "vehicles": [v.as_dict() for v in self.vehicles],
            "faults": dict(self.faults),
            "collisions": list(self.collisions),
            "open_rises": self.open_rises,
            "max_close_over_occupied_s": round(self.max_close_over_occupied_s, 3),
            "passed": list(self.passed),
            "turned_back": list(self.turned_back),
        }
