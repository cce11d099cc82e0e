"""Configuration of one relay/IO board and the lane it guards.

The model lives here, not in ``edge``, because gate-controller runs as its own process and
imports nothing from ``edge``; ``edge.config`` re-uses it for the ``relay_boards`` section so a
checkpoint keeps one YAML file. Defaults follow the register map in DESIGN-NOTES §5.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CoilMap(_Strict):
    """Coil addresses (Modbus function codes 01/05/15) of the board's relay outputs."""

    barrier_open: int = Field(default=0, ge=0, le=65535, description="coil that drives the arm up")
    barrier_close: int = Field(
        default=1, ge=0, le=65535,
        description="coil that drives the arm down"
    )
    green_light: int = Field(
        default=2, ge=0, le=65535,
        description="coil of the green traffic light"
    )
    red_light: int = Field(default=3, ge=0, le=65535, description="coil of the red traffic light")
    buzzer: int = Field(default=4, ge=0, le=65535, description="coil of the buzzer/horn")

    @model_validator(mode="after")
    def _distinct(self) -> CoilMap:
        values = list(self.model_dump().values())
        if len(set(values)) != len(values):
            raise ValueError("two outputs share one coil address; give each its own coil")
        return self


class InputMap(_Strict):
    """Discrete-input addresses (Modbus function code 02) of the lane sensors."""

    entry_loop: int = Field(default=0, ge=0, le=65535, description="inductive loop before the arm")
    exit_loop: int = Field(
        default=1, ge=0, le=65535,
        description="inductive loop under/after the arm"
    )
    photocell: int = Field(
        default=2, ge=0, le=65535,
        description="photocell beam across the arm's path"
    )
    arm_up_limit: int = Field(default=3, ge=0, le=65535, description="limit switch: arm fully up")
    arm_down_limit: int = Field(
        default=4, ge=0, le=65535,
        description="limit switch: arm fully down"
    )

    @model_validator(mode="after")
    def _distinct(self) -> InputMap:
        values = list(self.model_dump().values())
        if len(set(values)) != len(values):
            raise ValueError("two sensors share one input address; give each its own input")
        return self


class LaneTiming(_Strict):
    """Timings of the lane state machine, in seconds."""

    clear_settle_s: float = Field(
        default=1.5, gt=0, le=30,
        description="how long loops and photocell must all read clear before the arm may close",
    )
    arm_travel_timeout_s: float = Field(
        default=8.0, gt=0, le=60,
        description="an arm that has not reached its limit switch after this long is a fault",
    )
    token_ttl_s: float = Field(
        default=30.0, gt=0, le=600,
        description="how long an open token from a decision stays usable",
    )
    open_wait_s: float = Field(
        default=30.0, gt=0, le=600,
        description="an arm opened for a vehicle that never arrives closes after this long",
    )
    heartbeat_timeout_s: float = Field(
        default=3.0, gt=0, le=60,
        description="gate-edge silent this long: refuse new openings and raise an alarm",
    )
    stuck_loop_s: float = Field(
        default=300.0, gt=0,
        description="a loop occupied continuously this long is reported stuck (lane fault)",
    )
    poll_interval_s: float = Field(
        default=0.05, gt=0, le=1, description="how often the inputs are polled (FC02)"
    )


class RelayBoardConfig(_Strict):
    """One Modbus RTU relay/IO board on a serial line, guarding one lane's barrier."""

    name: str = Field(
        ..., pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
        description="short id used in logs, IPC and systemd instance names (e.g. board1)",
    )
    type: Literal["modbus-rtu"] = Field(
        default="modbus-rtu",
        description="board protocol; only Modbus RTU over serial is supported",
    )
    lane: str = Field(
        ..., description="id of the lane (from 'lanes') whose barrier this board drives"
    )
    port: str = Field(
        ...,
        description="serial device, e.g. /dev/gate-relay-1 (udev name) or a pyserial URL",
    )
    baudrate: Literal[9600, 19200, 38400, 57600, 115200] = Field(
        default=19200, description="serial speed in baud; the line is always 8 data bits"
    )
    parity: Literal["N", "E", "O"] = Field(default="N", description="parity: N none, E even, O odd")
    stopbits: Literal[1, 2] = Field(
        default=1,
        description="stop bits (Modbus RTU: 1 with parity, 2 without)"
    )
    slave_id: int = Field(
        default=1, ge=1, le=247,
        description="Modbus unit address of the board (1-247)"
    )
    timeout_s: float = Field(default=0.3, gt=0, le=5, description="response timeout per request")
    retries: int = Field(default=2, ge=0, le=10, description="retries after a timeout or CRC error")
    inter_frame_gap_ms: float = Field(
        default=5.0, ge=0, le=100,
        description="minimum silence between frames on the RS-485 bus (at least 3.5 chars)",
    )
    coils: CoilMap = Field(default_factory=CoilMap, description="coil addresses of the outputs")
    inputs: InputMap = Field(default_factory=InputMap, description="discrete inputs of sensors")
    timing: LaneTiming = Field(default_factory=LaneTiming, description="state machine timings")
    ipc_socket: str = Field(
        default="/run/gate-edge/controller-{name}.sock",
        description="Unix socket where gate-controller listens for gate-edge; {name} is replaced",
    )

    def socket_path(self) -> str:
        """The IPC socket path with the board name filled in."""
        return self.ipc_socket.replace("{name}", self.name)
