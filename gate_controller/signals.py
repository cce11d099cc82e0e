"""The vocabulary of a lane: states, arm commands, faults, alarms, I/O snapshots, commands.

Plain value types shared by the state machine (``lane``), the driver (``board``), the control
cycle (``core``) and the simulators; no behaviour lives here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class LaneState(StrEnum):
    """States of one lane (DESIGN-NOTES §5)."""

    IDLE = "idle"
    VEHICLE_PRESENT = "vehicle_present"
    DECIDING = "deciding"
    OPEN = "open"
    PASSING = "passing"
    CLOSING = "closing"
    FAULT = "fault"
    MANUAL = "manual"


class ArmCommand(StrEnum):
    """What the barrier motor is told: drive up, drive down, or neither (arm stays put)."""

    UP = "up"
    DOWN = "down"
    HOLD = "hold"


class FaultCode(StrEnum):
    """Why a lane went to ``fault``."""

    SERIAL_LOST = "SERIAL_LOST"
    READBACK_MISMATCH = "READBACK_MISMATCH"
    LIMIT_CONTRADICTION = "LIMIT_CONTRADICTION"
    ARM_TRAVEL_TIMEOUT = "ARM_TRAVEL_TIMEOUT"
    LOOP_STUCK = "LOOP_STUCK"


class Alarm(StrEnum):
    """Conditions an operator must see; the buzzing ones sound the lane's horn."""

    FAULT = "FAULT"
    HOLD = "HOLD"
    TAILGATING = "TAILGATING"
    HEARTBEAT_LOST = "HEARTBEAT_LOST"


BUZZING = frozenset({Alarm.FAULT, Alarm.HOLD, Alarm.TAILGATING})


@dataclass(frozen=True)
class Inputs:
    """One snapshot of the board's discrete inputs."""

    entry_loop: bool = False
    exit_loop: bool = False
    photocell: bool = False
    arm_up: bool = False
    arm_down: bool = True

    @property
    def occupied(self) -> bool:
        """Anything on either loop or across the beam."""
        return self.entry_loop or self.exit_loop or self.photocell

    @property
    def under_arm(self) -> bool:
        """Something where a descending arm could hit it."""
        return self.exit_loop or self.photocell

    @property
    def position(self) -> str:
        """Barrier position from the limit switches: up, down, between or contradictory."""
        if self.arm_up and self.arm_down:
            return "contradictory"
        if self.arm_up:
            return "up"
        return "down" if self.arm_down else "between"

    def as_dict(self) -> dict[str, bool]:
        """For events and status."""
        return asdict(self)


@dataclass(frozen=True)
class Outputs:
    """The coil states the lane wants on the board."""

    barrier_open: bool = False
    barrier_close: bool = False
    green_light: bool = False
    red_light: bool = True
    buzzer: bool = False

    def as_dict(self) -> dict[str, bool]:
        """For events and status."""
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """gate-edge's verdict for one presence event (IPC ``decision``)."""

    action: str  # open | refer | hold
    event_id: str
    passage_id: str
    token: str | None = None
    issued_at: float | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class OfficerCommand:
    """An officer's action relayed by gate-edge or typed on the bench CLI (IPC ``officer``)."""

    command: str  # open | close | manual | auto | reset | silence
    officer: str
    reason: str
    passage_id: str | None = None


class Rejected(Exception):
    """A command the lane refuses; ``code`` is machine-readable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class LaneEvent:
    """Something gate-edge must hear about; the controller stamps seq, ts, lane and board."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)
