"""Every lane transition and interlock, in simulated time against the board model."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from gate_controller.config import LaneTiming
from gate_controller.lane import (
    Alarm,
    ArmCommand,
    Decision,
    FaultCode,
    Inputs,
    Lane,
    LaneState,
    OfficerCommand,
    Rejected,
)
from simulators.relay_board.harness import LaneHarness

_tok = itertools.count()


def tok() -> str:
    return f"token{next(_tok):016d}"


def events(h: LaneHarness, kind: str) -> list[dict[str, Any]]:
    return [e for e in h.events if e["event"] == kind]


def states(h: LaneHarness) -> list[str]:
    return [e["state"] for e in h.events if e["event"] == "state"]


def arrive(h: LaneHarness, **kw: Any) -> str:
    h.model.add_vehicle(start_distance_m=8.0, **kw)
    h.run(4.0)
    assert h.lane.presence_id is not None
    return str(h.lane.presence_id)


@pytest.fixture
def h() -> LaneHarness:
    harness = LaneHarness()
    harness.run(0.5)
    assert harness.lane.state is LaneState.IDLE
    return harness


def safe(h: LaneHarness) -> None:
    assert h.violations == []
    assert h.model.collisions == []


def test_full_passage_with_token(h: LaneHarness) -> None:
    eid = arrive(h, length_m=12, speed_mps=4)
    assert h.lane.state is LaneState.DECIDING
    assert h.model.coil("barrier_open") is False  # nothing opens by itself
    assert h.decide("open", token=tok(), passage_id="PX1")["ok"]
    h.run(20)
    assert states(h)[-5:] == ["open", "passing", "closing", "idle"][-5:] or "idle" in states(h)
    for s in ("vehicle_present", "deciding", "open", "passing", "closing", "idle"):
        assert s in states(h), states(h)
    cleared = events(h, "cleared")[-1]
    assert cleared["passed"] is True and cleared["passage_id"] == "PX1"
    assert cleared["event_id"] == eid
    assert events(h, "direction")[0]["direction"] == "forward"
    assert h.model.passed and h.model.coil("barrier_close") and h.model.arm == 0.0
    safe(h)


@pytest.mark.parametrize(("kind", "code"), [
    ("expired", "token_expired"), ("future", "token_from_future"),
    ("before_start", "token_before_start"), ("bad_format", "bad_token"),
    ("wrong_event", "unknown_event"), ("reused", "token_reused"),
])
def test_bad_tokens_are_refused_and_arm_stays_down(h: LaneHarness, kind: str, code: str) -> None:
    if kind == "before_start":
        h = LaneHarness(LaneTiming(clear_settle_s=0.5, token_ttl_s=60, heartbeat_timeout_s=1.0))
    eid = arrive(h)
    token, issued, event_id = tok(), h.wall, eid
    if kind == "expired":
        issued = h.wall - h.timing.token_ttl_s - 0.5
    elif kind == "future":
        issued = h.wall + 30
    elif kind == "before_start":
        issued = h.lane.started_wall - 6  # its used-token memory died with that process
    elif kind == "bad_format":
        token = "short"
    elif kind == "wrong_event":
        event_id = "E-OTHER"
    elif kind == "reused":
        # first use on a decision that is refused still burns the token (one-shot)
        assert not h.decide("open", token=token, event_id="E-OTHER")["ok"]
    answer = h.decide("open", token=token, issued_at=issued, event_id=event_id)
    assert answer == {**answer, "ok": False, "error": code}
    h.run(3)
    assert h.lane.state is LaneState.DECIDING and h.model.arm == 0.0
    assert not h.model.coil("barrier_open")
    safe(h)


def test_an_unknown_action_is_refused_even_without_asserts(h: LaneHarness) -> None:
    """Only open/refer/hold exist; anything else is a refusal, never an opening.

    The IPC schema rejects other actions first; this pins the lane's own check, which once was
    an assert (gone under ``python -O``, and then a tokenless opening).
    """
    eid = arrive(h)
    for action in ("close", "OPEN", ""):
        with pytest.raises(Rejected) as err:
            h.lane.decide(h.now, h.wall, Decision(action, eid, "P1"))
        assert err.value.code == "unknown_action"
    h.run(3)
    assert h.lane.state is LaneState.DECIDING and h.model.arm == 0.0
    assert not h.model.coil("barrier_open")
    safe(h)


def test_wall_clock_stepped_back_after_the_start_still_opens(h: LaneHarness) -> None:
    # chrony stepping a fast RTC back at boot, after gate-controller started: tokens minted
    # on the corrected clock must not all look "issued before this controller started".
    h.wall0 -= 240
    h.run(0.5)
    eid = arrive(h)
    answer = h.decide("open", token=tok(), event_id=eid)
    assert answer["ok"], answer
    h.run(3)
    assert h.model.arm > 0.5
    # ...while a token from before the start, on the corrected clock, is still refused
    h2 = LaneHarness(LaneTiming(clear_settle_s=0.5, token_ttl_s=600, heartbeat_timeout_s=1.0))
    h2.run(60)
    h2.wall0 -= 240
    eid = arrive(h2)
    answer = h2.decide("open", token=tok(), issued_at=h2.wall - 70, event_id=eid)
    assert answer == {**answer, "ok": False, "error": "token_before_start"}
    safe(h)


def test_token_for_previous_vehicle_cannot_open_for_the_next(h: LaneHarness) -> None:
    eid = arrive(h, turn_back_after_s=1.0)
    h.run(15)  # the vehicle turned back; the lane is idle again
    assert h.lane.state is LaneState.IDLE
    assert events(h, "cleared")[-1]["passed"] is False
    arrive(h)
    assert not h.decide("open", token=tok(), event_id=eid)["ok"]
    safe(h)


def test_no_heartbeat_means_no_opening(h: LaneHarness) -> None:
    h.edge_alive = False
    h.run(2)
    assert Alarm.HEARTBEAT_LOST in h.lane.alarms
    arrive(h)
    assert h.lane.state is LaneState.VEHICLE_PRESENT
    answer = h.decide("open", token=tok())
    assert answer["error"] == "heartbeat_lost"
    assert h.officer("open")["ok"]  # an officer can still let the truck through
    h.run(20)
    assert h.model.passed and h.lane.state is LaneState.IDLE
    safe(h)


def test_heartbeat_loss_while_passing_lets_vehicle_clear(h: LaneHarness) -> None:
    arrive(h, length_m=16, speed_mps=2)
    assert h.decide("open", token=tok())["ok"]
    h.run(2.5)
    h.edge_alive = False
    h.run(25)
    assert Alarm.HEARTBEAT_LOST in h.lane.alarms
    assert h.model.passed and h.lane.state is LaneState.IDLE and h.model.arm == 0.0
    safe(h)


def test_refer_then_officer_open(h: LaneHarness) -> None:
    arrive(h)
    assert h.decide("refer")["ok"]
    h.run(3)
    assert h.lane.state is LaneState.DECIDING and h.model.arm == 0.0
    assert events(h, "referred")
    assert h.officer("open")["ok"]
    h.run(20)
    assert h.model.passed
    safe(h)


def test_hold_sounds_alarm_and_blocks_tokens(h: LaneHarness) -> None:
    arrive(h)
    assert h.decide("hold")["ok"]
    h.run(1)
    assert Alarm.HOLD in h.lane.alarms and h.model.coil("buzzer") and h.model.coil("red_light")
    assert h.decide("open", token=tok())["error"] == "held"
    assert h.officer("silence")["ok"]
    h.run(0.2)
    assert not h.model.coil("buzzer")
    assert h.model.arm == 0.0
    safe(h)


def test_vehicle_stopping_under_arm_keeps_it_up(h: LaneHarness) -> None:
    arrive(h, length_m=10, speed_mps=3, stops=[(1.5, 12.0)])
    assert h.decide("open", token=tok())["ok"]
    h.run(14)
    assert h.lane.state is LaneState.PASSING
    assert h.model.coil("barrier_open") and not h.model.coil("barrier_close")
    h.run(20)
    assert h.model.passed and h.lane.state is LaneState.IDLE
    safe(h)


def test_tailgating_is_reported_and_arm_waits(h: LaneHarness) -> None:
    h.model.add_vehicle(length_m=8, speed_mps=4, start_distance_m=8.0)
    h.model.add_vehicle(length_m=8, speed_mps=4, tailgate=True)
    h.run(4)
    assert h.decide("open", token=tok(), passage_id="PT1")["ok"]
    h.run(30)
    tail = events(h, "tailgating")
    assert tail and tail[0]["passage_id"] == "PT1" and tail[0]["reason"] == "TAILGATING"
    assert len(h.model.passed) == 2 and h.lane.state is LaneState.IDLE
    assert any(e["alarm"] == "TAILGATING" and e["active"] for e in events(h, "alarm"))
    safe(h)


def test_reverse_direction_from_loop_order(h: LaneHarness) -> None:
    h.model.add_vehicle(length_m=6, speed_mps=3, direction="reverse", start_distance_m=8.0)
    h.run(5)
    assert events(h, "vehicle_present")[0]["first_sensor"] == "exit_loop"
    assert h.officer("open")["ok"]
    h.run(20)
    assert events(h, "direction")[0]["direction"] == "reverse"
    safe(h)


def test_serial_loss_faults_and_keeps_arm_up_over_vehicle(h: LaneHarness) -> None:
    arrive(h, length_m=16, speed_mps=1.5)
    assert h.decide("open", token=tok())["ok"]
    h.run(3)
    h.inject("no_response")
    h.run(0.2)
    assert h.lane.state is LaneState.FAULT and h.lane.fault.value == "SERIAL_LOST"
    assert Alarm.FAULT in h.lane.alarms
    h.run(30)  # the board holds its outputs: the arm stays up, the truck drives through
    assert h.model.arm == 1.0 and not h.model.coil("barrier_close")
    assert h.officer("reset")["error"] == "board_unreachable"
    h.clear_faults()
    h.run(0.2)
    assert h.officer("reset")["ok"]
    h.run(10)
    assert h.lane.state is LaneState.IDLE and h.model.arm == 0.0
    safe(h)


def test_readback_mismatch_is_a_fault(h: LaneHarness) -> None:
    h.inject("relay_stuck", "red_light")
    arrive(h)
    h.officer("open")
    h.run(0.2)
    assert h.lane.fault is not None and h.lane.fault.value == "READBACK_MISMATCH"
    safe(h)


def test_power_loss_then_restore_is_detected(h: LaneHarness) -> None:
    h.inject("power_loss")
    h.run(0.2)
    assert h.lane.fault is not None and h.lane.fault.value == "SERIAL_LOST"
    h.clear_faults()
    h.run(1)
    assert h.officer("reset")["ok"]
    h.run(1)
    assert h.lane.state is LaneState.IDLE and h.model.coil("barrier_close")
    safe(h)


def test_board_reset_behind_our_back_is_detected(h: LaneHarness) -> None:
    h.model.set_power(False)
    h.model.set_power(True)  # a brown-out shorter than a poll: relays dropped
    h.run(1.0)
    assert h.lane.fault is not None and h.lane.fault.value == "READBACK_MISMATCH"
    safe(h)


def test_arm_jam_is_travel_timeout(h: LaneHarness) -> None:
    arrive(h)
    h.inject("arm_jam")
    assert h.decide("open", token=tok())["ok"]
    h.run(h.timing.arm_travel_timeout_s + 0.5)
    assert h.lane.fault is not None and h.lane.fault.value == "ARM_TRAVEL_TIMEOUT"
    safe(h)


def test_limit_switches_contradicting_is_a_fault(h: LaneHarness) -> None:
    arrive(h)
    h.inject("limit_stuck_down")
    assert h.decide("open", token=tok())["ok"]
    h.run(2)
    assert h.lane.fault is not None and h.lane.fault.value == "LIMIT_CONTRADICTION"
    assert not h.model.coil("barrier_close")
    safe(h)


def test_stuck_loop_is_a_fault(h: LaneHarness) -> None:
    h.inject("stuck_loop", "exit_loop")
    h.run(h.timing.stuck_loop_s + 1)
    assert h.lane.fault is not None and h.lane.fault.value == "LOOP_STUCK"
    assert h.officer("reset")["error"] == "loop_stuck"
    h.clear_faults()
    h.run(0.2)
    assert h.officer("reset")["ok"]
    safe(h)


def test_manual_mode_keeps_interlocks(h: LaneHarness) -> None:
    assert h.officer("manual")["ok"]
    assert h.officer("open")["ok"]
    h.run(2)
    assert h.model.arm == 1.0
    h.model.add_vehicle(length_m=10, speed_mps=2, stops=[(0.5, 5.0)], start_distance_m=4.0)
    h.run(3)
    assert h.officer("close")["error"] == "occupied"
    h.run(15)
    assert h.officer("close")["ok"]
    h.run(2)
    assert h.model.arm == 0.0
    assert h.officer("auto")["ok"]
    h.run(0.5)
    assert h.lane.state is LaneState.IDLE
    safe(h)


def test_a_vehicle_that_left_in_manual_mode_is_cleared_on_return_to_auto(h: LaneHarness) -> None:
    """gate-edge gets `cleared` for the vehicle it was told about, with `passed` unknown.

    Without it the lane went idle still carrying that vehicle's ids, and gate-edge kept its
    passage open: manual mode does not watch the arm line, so passed is null, not a guess.
    """
    eid = arrive(h, turn_back_after_s=3.0)
    assert h.officer("manual")["ok"]
    h.run(15)                                   # the vehicle reversed out while in manual
    assert not h.lane.inputs.occupied
    assert h.officer("auto")["ok"]
    h.run(0.5)
    assert h.lane.state is LaneState.IDLE and h.lane.presence_id is None
    [cleared] = [e for e in events(h, "cleared") if e["event_id"] == eid]
    assert cleared["passed"] is None and cleared["reason"] == "left_unwatched"
    assert h.lane.snapshot()["event_id"] is None
    safe(h)


def test_officer_close_refused_while_occupied(h: LaneHarness) -> None:
    arrive(h, stops=[(1.0, 10.0)])
    h.officer("open")
    h.run(4)
    assert h.officer("close")["error"] == "occupied"
    safe(h)


# ---------------------------------------------------------------- direct transitions
def lane_at(state: LaneState) -> Lane:
    timing = LaneTiming(clear_settle_s=0.5, heartbeat_timeout_s=1.0)
    lane = Lane("L1", timing, now=0.0, started_wall=1000.0)
    lane.resume(0.0, Inputs(), lane.outputs())
    lane.heartbeat(0.0)
    lane.tick(0.1, Inputs(entry_loop=True))
    lane.heartbeat(0.1)
    if state is LaneState.DECIDING:
        return lane
    lane.decide(0.2, 1000.5, Decision("open", str(lane.presence_id), "P1", tok(), 1000.4))
    lane.tick(0.3, Inputs(exit_loop=True, arm_up=True, arm_down=False))
    if state is LaneState.OPEN:
        return lane
    lane.tick(0.4, Inputs(exit_loop=True, photocell=True, arm_up=True, arm_down=False))
    if state is LaneState.PASSING:
        return lane
    lane.tick(0.5, Inputs(arm_up=True, arm_down=False))
    lane.tick(1.1, Inputs(arm_up=True, arm_down=False))
    assert lane.state is LaneState.CLOSING
    return lane


def test_closing_reopens_when_something_is_under_the_arm() -> None:
    lane = lane_at(LaneState.CLOSING)
    assert lane.arm is ArmCommand.DOWN and lane.outputs().barrier_close
    lane.tick(1.2, Inputs(photocell=True, arm_down=False))
    assert lane.state is LaneState.OPEN and lane.arm is ArmCommand.UP
    assert any(e.event == "reopened" for e in lane.drain_events())


def test_closing_halts_for_a_new_vehicle_on_the_entry_loop() -> None:
    lane = lane_at(LaneState.CLOSING)
    previous = lane.presence_id
    lane.heartbeat(1.15)
    lane.tick(1.2, Inputs(entry_loop=True, arm_down=False))
    assert lane.arm is ArmCommand.HOLD
    out = lane.outputs()
    assert not out.barrier_open and not out.barrier_close
    assert lane.state is LaneState.DECIDING and lane.presence_id != previous


def test_outputs_never_drive_down_over_occupancy_even_if_asked() -> None:
    lane = lane_at(LaneState.CLOSING)
    lane.inputs = Inputs(exit_loop=True)  # as if a transition had forgotten the interlock
    assert lane.arm is ArmCommand.DOWN
    assert not lane.outputs().barrier_close


def test_fault_never_lowers_the_arm() -> None:
    lane = lane_at(LaneState.CLOSING)
    lane.board_error(1.2, FaultCode.SERIAL_LOST, "test")
    assert lane.state is LaneState.FAULT and not lane.outputs().barrier_close
    with pytest.raises(Rejected):
        lane.officer(1.3, OfficerCommand("open", "o1", "test"))


def test_used_token_resent_much_later_with_new_issue_time_is_refused(h: LaneHarness) -> None:
    """Found by the soak: a used token was forgotten once its expiry passed."""
    eid = arrive(h)
    token = tok()
    assert h.decide("open", token=token, issued_at=h.wall - 3600)["error"] == "token_expired"
    h.run(h.timing.token_ttl_s * 3)
    assert h.decide("open", token=token, event_id=eid)["error"] == "token_reused"
    assert h.model.arm == 0.0


def test_arm_lifted_by_hand_while_a_vehicle_waits_is_a_fault(h: LaneHarness) -> None:
    arrive(h)
    h.model.arm = 0.5  # nobody commanded it: lifted by hand
    h.run(0.2)
    assert h.lane.fault is not None and h.lane.fault.value == "LIMIT_CONTRADICTION"
