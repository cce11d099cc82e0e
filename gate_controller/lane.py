"""Lane state machine: the one place where barrier interlocks are decided.

Everything here is pure and synchronous: it is fed input snapshots, decisions and officer
commands with the time they happened, and answers with the outputs the board should show and
the lane events to report. No I/O, no threads, no clocks of its own, so the same code runs
under the real Modbus driver, under the in-process board model of the property tests and in
the soak benchmark (DESIGN-NOTES §5).

Two pieces of bookkeeping live next door so this module keeps states, decisions and interlocks
only: ``occupancy`` (what the loops and the photocell have shown over time: settle and
stuck-loop clocks, direction, tailgating) and ``arm_travel`` (whether the arm reaches the limit
its command asks for). Both only answer with facts; every decision below is still taken here.

Safety rules enforced here and nowhere else:

* the close coil is energised only while both loops and the photocell read clear; something
  under the arm while closing re-opens it, something only on the entry loop halts it;
* the open coil rises only for a one-shot token bound to the current vehicle's presence event
  (and its passage id) from a positive decision, for an officer command, or to re-open over a
  vehicle while closing an already authorised passage;
* any fault stops a descending arm where it is and never lowers it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ulid import ULID

from gate_controller.arm_travel import ArmTravel
from gate_controller.config import LaneTiming
from gate_controller.occupancy import Occupancy
from gate_controller.signals import (
    BUZZING,
    Alarm,
    ArmCommand,
    Decision,
    FaultCode,
    Inputs,
    LaneEvent,
    LaneState,
    OfficerCommand,
    Outputs,
    Rejected,
)
from gate_controller.tokens import TOKEN_MAX_FUTURE_S, TokenBook

__all__ = [
    "TOKEN_MAX_FUTURE_S", "Alarm", "ArmCommand", "Decision", "FaultCode", "Inputs", "Lane",
    "LaneEvent", "LaneState", "OfficerCommand", "Outputs", "Rejected",
]

logger = logging.getLogger(__name__)



def _new_id() -> str:
    return str(ULID())


class Lane:
    """The state machine of one barrier lane. Not thread-safe: one owner calls it."""

    def __init__(
        self,
        lane_id: str,
        timing: LaneTiming,
        *,
        now: float,
        started_wall: float,
        id_factory: Callable[[], str] = _new_id,
    ) -> None:
        self.lane_id = lane_id
        self.timing = timing
        self._new_id = id_factory
        self.started_wall = started_wall
        self.started_at = now
        self.state = LaneState.FAULT
        self.fault: FaultCode | None = FaultCode.SERIAL_LOST
        self.fault_detail = "board not read yet"
        self.arm = ArmCommand.HOLD
        self.alarms: set[Alarm] = {Alarm.FAULT}
        self.silenced = False
        self.inputs = Inputs()
        self.presence_id: str | None = None
        self.passage_id: str | None = None
        self.authorized_by: str | None = None
        self.direction: str | None = None
        self.held = False
        self.referred = False
        self.resumed = False
        self.ever_read = False
        self._events: list[LaneEvent] = []
        self.travel = ArmTravel(now)
        self.occupancy = Occupancy()
        self._crossed = False
        self._opened_at = now
        self._seen_since_open = False
        self._last_heartbeat: float | None = None
        self._link_alive = False
        self.tokens = TokenBook(timing.token_ttl_s, started_wall, started_mono=now)
        self._fault_at = now
        self._last_read_at: float | None = None

    # ------------------------------------------------------------------ public API
    def drain_events(self) -> list[LaneEvent]:
        """Events since the last call, oldest first."""
        out, self._events = self._events, []
        return out

    @property
    def link_alive(self) -> bool:
        """Whether gate-edge's heartbeats are current (as of the last tick)."""
        return self._link_alive

    def outputs(self) -> Outputs:
        """Coils the board should show now; the last interlock check lives here too."""
        arm = self.arm
        if arm is ArmCommand.DOWN and self.inputs.occupied:
            # Belt and braces: the transitions never ask for this, but if they did the coil
            # would still not be energised over an occupied lane.
            logger.error("lane %s: refused to drive the arm down over an occupied lane",
                         self.lane_id)
            arm = ArmCommand.HOLD
        green = self.state in (LaneState.OPEN, LaneState.PASSING) and arm is ArmCommand.UP
        buzzing = bool(self.alarms & BUZZING) and not self.silenced
        return Outputs(
            barrier_open=arm is ArmCommand.UP,
            barrier_close=arm is ArmCommand.DOWN,
            green_light=green,
            red_light=not green,
            buzzer=buzzing,
        )

    def resume(self, now: float, inputs: Inputs, coils: Outputs) -> None:
        """Take over a board whose state we did not set (start-up, fault reset, manual → auto).

        The arm is never moved towards a vehicle: if it is not down, it is kept where it is
        (held up if the open coil was already on) until the lane has been clear for the
        settle time, then closed.
        """
        self.inputs = inputs
        self.ever_read = True
        self._last_read_at = now
        self.fault = None
        self.fault_detail = ""
        self._drop_alarm(Alarm.FAULT)
        self.held = self.referred = False
        self._drop_alarm(Alarm.HOLD)
        self.occupancy.reset(now, inputs)
        self._crossed = False
        if inputs.arm_down and not inputs.arm_up:
            if inputs.occupied:
                self._set_arm(now, ArmCommand.HOLD)
                self._new_presence(now, inputs)
            else:
                if self.presence_id is not None:
                    # The vehicle announced before (manual mode, a fault) left while the lane
                    # was not ours: close its passage for gate-edge. Whether it crossed the arm
                    # line nobody watched, so `passed` is unknown (null), never a guess.
                    self._emit("cleared", event_id=self.presence_id, passage_id=self.passage_id,
                               passed=None, direction=self.direction, reason="left_unwatched")
                    self._finish_passage()
                self._set_state(LaneState.IDLE)
                self._set_arm(now, ArmCommand.DOWN)
        else:
            self.resumed = True
            self.presence_id = self.presence_id or self._new_id()
            # a fresh command for the travel clock: a reset gives a jammed arm a new chance
            self._set_arm(now, ArmCommand.UP if coils.barrier_open else ArmCommand.HOLD,
                          restart=True)
            self._set_state(LaneState.PASSING)
        self._emit("resumed", arm=self.arm.value, inputs=inputs.as_dict())

    def release_arm(self, now: float, why: str) -> None:
        """Stop driving the arm (both motor coils off).

        Used in fault when the board's coils were lost, so the controller never re-energises
        a motor it cannot vouch for.
        """
        if self.arm is not ArmCommand.HOLD:
            self._set_arm(now, ArmCommand.HOLD)
            self._emit("arm_released", why=why, state=self.state.value)

    def heartbeat(self, now: float) -> None:
        """gate-edge is alive."""
        self._last_heartbeat = now
        self._update_link(now)

    def board_error(self, now: float, code: FaultCode, detail: str) -> None:
        """The driver could not talk to the board or saw a read-back mismatch."""
        if self.state is LaneState.FAULT and self.fault is not None:
            return
        self._enter_fault(now, code, detail)

    def tick(self, now: float, inputs: Inputs) -> None:
        """Feed a fresh input snapshot; runs every timer and transition."""
        previous = self.inputs
        self.inputs = inputs
        self._last_read_at = now
        self._update_link(now)
        self._track(now, inputs, previous)
        if not self.ever_read:
            # first successful read after start-up: take over whatever the board shows
            self.resume(now, inputs, Outputs(barrier_open=False))
            return
        if self.state is LaneState.FAULT:
            return
        if self._check_faults(now, inputs):
            return
        handler = {
            LaneState.IDLE: self._tick_idle,
            LaneState.VEHICLE_PRESENT: self._tick_waiting,
            LaneState.DECIDING: self._tick_waiting,
            LaneState.OPEN: self._tick_open,
            LaneState.PASSING: self._tick_passing,
            LaneState.CLOSING: self._tick_closing,
            LaneState.MANUAL: self._tick_manual,
        }[self.state]
        handler(now, inputs)

    def decide(self, now: float, wall: float, decision: Decision) -> None:
        """Apply gate-edge's decision; raises Rejected with the reason if it may not."""
        if decision.action not in ("open", "refer", "hold"):
            # The IPC schema admits only these; an explicit refusal, not an assert, keeps it so
            # under `python -O` too: anything else must never reach the opening below.
            raise Rejected("unknown_action", f"decision action {decision.action!r} is not one "
                                             "of open, refer, hold")
        token_ok: str | None = None
        if decision.action == "open":
            token_ok = self._consume_token(now, wall, decision)
        if self.state is LaneState.FAULT:
            raise Rejected("fault", f"lane is in fault ({self.fault}); only an officer reset helps")
        if self.presence_id is None or decision.event_id != self.presence_id:
            raise Rejected(
                "unknown_event",
                f"decision is for event {decision.event_id!r} but the vehicle present is "
                f"{self.presence_id!r}",
            )
        if self.state not in (LaneState.VEHICLE_PRESENT, LaneState.DECIDING):
            raise Rejected("not_waiting", f"lane is {self.state.value}, not waiting for a decision")
        if not self._link_alive:
            raise Rejected("heartbeat_lost", "gate-edge heartbeats stopped; new openings refused")
        if decision.action == "refer":
            self.referred = True
            self.passage_id = decision.passage_id
            self._emit("referred", event_id=self.presence_id, passage_id=decision.passage_id,
                       reasons=list(decision.reasons))
            return
        if decision.action == "hold":
            self.held = True
            self.passage_id = decision.passage_id
            self._raise_alarm(Alarm.HOLD, passage_id=decision.passage_id,
                              reasons=list(decision.reasons))
            self._emit("held", event_id=self.presence_id, passage_id=decision.passage_id,
                       reasons=list(decision.reasons))
            return
        if self.held:
            raise Rejected("held", "this vehicle is on hold; only an officer may open")
        if token_ok is None:
            raise Rejected("bad_token", "an opening needs a valid decision token")
        self.passage_id = decision.passage_id
        self._open(now, by="token")

    def officer(self, now: float, cmd: OfficerCommand) -> None:
        """Apply an officer's command; raises Rejected with the reason if it may not."""
        logger.info("lane %s: officer %s: %s (%s)", self.lane_id, cmd.officer, cmd.command,
                    cmd.reason)
        if cmd.command == "silence":
            self.silenced = True
            self._emit("silenced", officer=cmd.officer)
            return
        if cmd.command == "reset":
            self._officer_reset(now, cmd)
            return
        if self.state is LaneState.FAULT:
            raise Rejected("fault", f"lane is in fault ({self.fault}); reset it first")
        if cmd.command == "open":
            self.held = False
            self._drop_alarm(Alarm.HOLD)
            if cmd.passage_id:
                self.passage_id = cmd.passage_id
            if self.state is LaneState.MANUAL:
                self.authorized_by = f"officer:{cmd.officer}"
                self._set_arm(now, ArmCommand.UP)
                self._emit("opening", event_id=self.presence_id, passage_id=self.passage_id,
                           by=self.authorized_by)
            else:
                self._open(now, by=f"officer:{cmd.officer}")
        elif cmd.command == "close":
            if self.inputs.occupied:
                raise Rejected("occupied", "a loop or the photocell is occupied; the arm stays")
            if self.state is LaneState.MANUAL:
                self._set_arm(now, ArmCommand.DOWN)
            elif self.state is LaneState.IDLE:
                raise Rejected("already_closed", "the lane is idle and the arm is down")
            else:
                self._enter_closing(now)
        elif cmd.command == "manual":
            if self.arm is ArmCommand.DOWN and self.inputs.occupied:
                self._set_arm(now, ArmCommand.HOLD)
            self._set_state(LaneState.MANUAL)
        elif cmd.command == "auto":
            if self.state is not LaneState.MANUAL:
                raise Rejected("not_manual", "the lane is not in manual mode")
            self.resume(now, self.inputs, self.outputs())
        else:
            raise Rejected("unknown_command", f"unknown officer command {cmd.command!r}")

    def snapshot(self) -> dict[str, Any]:
        """Everything an operator needs at a glance (IPC ``status``)."""
        return {
            "state": self.state.value,
            "arm": self.arm.value,
            "barrier": self.inputs.position,
            "fault": self.fault.value if self.fault else None,
            "fault_detail": self.fault_detail or None,
            "alarms": sorted(a.value for a in self.alarms),
            "event_id": self.presence_id,
            "passage_id": self.passage_id,
            "direction": self.direction,
            "link_alive": self._link_alive,
            "inputs": self.inputs.as_dict(),
            "outputs": self.outputs().as_dict(),
        }

    # ------------------------------------------------------------------ per state
    def _tick_idle(self, now: float, inputs: Inputs) -> None:
        if inputs.occupied:
            self._set_arm(now, ArmCommand.HOLD)
            self._new_presence(now, inputs)
        elif self.arm is not ArmCommand.DOWN:
            self._set_arm(now, ArmCommand.DOWN)

    def _tick_waiting(self, now: float, inputs: Inputs) -> None:
        if self.state is LaneState.VEHICLE_PRESENT and self._link_alive:
            self._set_state(LaneState.DECIDING)
        elif self.state is LaneState.DECIDING and not self._link_alive:
            self._set_state(LaneState.VEHICLE_PRESENT)
        self._note_direction(inputs)
        if self._settled(now):
            self._emit("cleared", event_id=self.presence_id, passage_id=self.passage_id,
                       passed=False, direction=self.direction)
            if inputs.arm_down:
                self._finish_passage()
                self._set_state(LaneState.IDLE)
                self._set_arm(now, ArmCommand.DOWN)
            else:
                self._enter_closing(now)

    def _tick_open(self, now: float, inputs: Inputs) -> None:
        self._note_direction(inputs)
        self._check_tailgating(inputs)
        if inputs.photocell:
            self._crossed = True
            self._set_state(LaneState.PASSING)
            return
        if inputs.occupied:
            self._seen_since_open = True
        waited = now - self._opened_at >= self.timing.open_wait_s
        if self._settled(now) and (self._seen_since_open or waited):
            self._emit("cleared", event_id=self.presence_id, passage_id=self.passage_id,
                       passed=self._crossed, direction=self.direction)
            self._enter_closing(now)

    def _tick_passing(self, now: float, inputs: Inputs) -> None:
        self._note_direction(inputs)
        self._check_tailgating(inputs)
        if inputs.photocell:
            self._crossed = True
        if self._settled(now):
            self._emit("cleared", event_id=self.presence_id, passage_id=self.passage_id,
                       passed=self._crossed or not self.resumed, direction=self.direction)
            self._enter_closing(now)

    def _tick_closing(self, now: float, inputs: Inputs) -> None:
        if inputs.arm_down:
            # down: whatever is on the loops now is a new vehicle, never a reason to re-open
            self._finish_passage()
            if inputs.occupied:
                self._set_arm(now, ArmCommand.HOLD)
                self._new_presence(now, inputs)
            else:
                self._set_state(LaneState.IDLE)
        elif inputs.under_arm:
            self._set_arm(now, ArmCommand.UP)
            self._set_state(LaneState.OPEN)
            self._seen_since_open = True
            self._emit("reopened", event_id=self.presence_id, passage_id=self.passage_id,
                       inputs=inputs.as_dict())
        elif inputs.entry_loop:
            # a new vehicle rolled up while the arm came down: stop the arm, let gate-edge decide
            self._set_arm(now, ArmCommand.HOLD)
            self._finish_passage()
            self._new_presence(now, inputs)

    def _tick_manual(self, now: float, inputs: Inputs) -> None:
        if self.arm is ArmCommand.DOWN and inputs.occupied:
            # re-open only an arm that is on its way down over something; an arm at rest
            # down just stops being driven
            if inputs.under_arm and not inputs.arm_down:
                self._set_arm(now, ArmCommand.UP)
                self._emit("reopened", event_id=self.presence_id, passage_id=self.passage_id,
                           inputs=inputs.as_dict())
            else:
                self._set_arm(now, ArmCommand.HOLD)

    # ------------------------------------------------------------------ helpers
    def _open(self, now: float, by: str) -> None:
        self.authorized_by = by
        self._opened_at = now
        self._seen_since_open = self.inputs.occupied
        self._set_arm(now, ArmCommand.UP)
        self._set_state(LaneState.OPEN)
        self.occupancy.watch_for_tailgating()
        self._emit("opening", event_id=self.presence_id, passage_id=self.passage_id, by=by)

    def _enter_closing(self, now: float) -> None:
        self._set_state(LaneState.CLOSING)
        self._set_arm(now, ArmCommand.DOWN)

    def _new_presence(self, now: float, inputs: Inputs) -> None:
        self.presence_id = self._new_id()
        self.passage_id = None
        self.authorized_by = None
        self.held = self.referred = self.resumed = False
        self._drop_alarm(Alarm.HOLD)
        self._drop_alarm(Alarm.TAILGATING)
        self.occupancy.new_vehicle()
        self._crossed = False
        self.direction = None
        self._note_direction(inputs)
        first = self.occupancy.first_loop
        self._emit("vehicle_present", event_id=self.presence_id,
                   first_sensor=first or ("photocell" if inputs.photocell else None),
                   inputs=inputs.as_dict())
        self._set_state(LaneState.VEHICLE_PRESENT)
        if self._link_alive:
            self._set_state(LaneState.DECIDING)

    def _finish_passage(self) -> None:
        self.presence_id = None
        self.direction = None
        self.passage_id = None
        self.authorized_by = None
        self.held = self.referred = self.resumed = False
        self.silenced = False
        self._drop_alarm(Alarm.HOLD)
        self._drop_alarm(Alarm.TAILGATING)

    def _note_direction(self, inputs: Inputs) -> None:
        direction = self.occupancy.note_loops(inputs)
        if direction is not None:
            self.direction = direction
            self._emit("direction", event_id=self.presence_id, passage_id=self.passage_id,
                       direction=self.direction)

    def _check_tailgating(self, inputs: Inputs) -> None:
        """Report a second vehicle entering before the first has cleared (see Occupancy)."""
        if self.occupancy.second_vehicle(inputs, self.direction):
            second = self._new_id()
            self._raise_alarm(Alarm.TAILGATING, event_id=self.presence_id,
                              passage_id=self.passage_id, second_event_id=second)
            self._emit("tailgating", event_id=self.presence_id, passage_id=self.passage_id,
                       second_event_id=second, reason="TAILGATING")

    def _settled(self, now: float) -> bool:
        return self.occupancy.settled(now, self.timing.clear_settle_s)

    def _track(self, now: float, inputs: Inputs, previous: Inputs) -> None:
        self.occupancy.track(now, inputs)
        self.travel.track(self.arm, inputs)
        if inputs.position != previous.position:
            self._emit("barrier", position=inputs.position, arm=self.arm.value)

    def _check_faults(self, now: float, inputs: Inputs) -> bool:
        if inputs.arm_up and inputs.arm_down:
            self._enter_fault(now, FaultCode.LIMIT_CONTRADICTION, "both limit switches active")
            return True
        stuck = self.occupancy.stuck_loop(now, self.timing.stuck_loop_s)
        if stuck is not None:
            loop, occupied_s = stuck
            self._enter_fault(now, FaultCode.LOOP_STUCK, f"{loop} occupied for {occupied_s:.0f} s")
            return True
        found = self.travel.fault(now, self.arm, inputs, self.timing.arm_travel_timeout_s)
        if found is not None:
            self._enter_fault(now, *found)
            return True
        return False

    def _enter_fault(self, now: float, code: FaultCode, detail: str) -> None:
        logger.error("lane %s: FAULT %s: %s", self.lane_id, code.value, detail)
        self.fault = code
        self.fault_detail = detail
        self._fault_at = now
        self.silenced = False
        if self.arm is ArmCommand.DOWN:
            self._set_arm(now, ArmCommand.HOLD)  # stop a descending arm; never lower it
        self._set_state(LaneState.FAULT)
        self._raise_alarm(Alarm.FAULT, code=code.value, detail=detail)
        self._emit("fault", code=code.value, detail=detail, event_id=self.presence_id,
                   passage_id=self.passage_id)

    def _officer_reset(self, now: float, cmd: OfficerCommand) -> None:
        if self.state is not LaneState.FAULT:
            raise Rejected("not_in_fault", "the lane is not in fault")
        if self._last_read_at is None or self._last_read_at <= self._fault_at:
            raise Rejected("board_unreachable", "no good read from the board since the fault")
        if self.inputs.arm_up and self.inputs.arm_down:
            raise Rejected("limit_contradiction", "both limit switches still active")
        stuck = self.occupancy.stuck_loop(now, self.timing.stuck_loop_s)
        if stuck is not None:
            raise Rejected("loop_stuck", f"{stuck[0]} still occupied; check the loop detector")
        self._emit("reset", officer=cmd.officer, reason=cmd.reason, fault=self.fault)
        self.resume(now, self.inputs, self.outputs())

    def _consume_token(self, now: float, wall: float, decision: Decision) -> str:
        return self.tokens.consume(wall, decision.token, decision.issued_at, now=now)

    def _update_link(self, now: float) -> None:
        alive = (
            self._last_heartbeat is not None
            and now - self._last_heartbeat <= self.timing.heartbeat_timeout_s
        )
        never = (self._last_heartbeat is None
                 and now - self.started_at > self.timing.heartbeat_timeout_s)
        if alive and not self._link_alive:
            self._link_alive = True
            self._drop_alarm(Alarm.HEARTBEAT_LOST)
            self._emit("link", alive=True)
        elif not alive and (self._link_alive or never) and Alarm.HEARTBEAT_LOST not in self.alarms:
            self._link_alive = False
            logger.error("lane %s: gate-edge heartbeats lost; refusing new openings", self.lane_id)
            self._raise_alarm(Alarm.HEARTBEAT_LOST)
            self._emit("link", alive=False)

    def _set_state(self, state: LaneState) -> None:
        if state is self.state:
            return
        previous, self.state = self.state, state
        self._emit("state", state=state.value, previous=previous.value,
                   event_id=self.presence_id, passage_id=self.passage_id)

    def _set_arm(self, now: float, arm: ArmCommand, *, restart: bool = False) -> None:
        if arm is self.arm and not restart:
            return
        self.arm = arm
        self.travel.commanded(now, arm, self.inputs)

    def _raise_alarm(self, alarm: Alarm, **data: Any) -> None:
        if alarm not in self.alarms:
            self.alarms.add(alarm)
            if alarm in BUZZING:
                self.silenced = False
            self._emit("alarm", alarm=alarm.value, active=True, **data)

    def _drop_alarm(self, alarm: Alarm) -> None:
        if alarm in self.alarms:
            self.alarms.discard(alarm)
            self._emit("alarm", alarm=alarm.value, active=False)

    def _emit(self, event: str, **data: Any) -> None:
        self._events.append(LaneEvent(event, data))
