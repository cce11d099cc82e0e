"""The barrier arm's travel: is the motor doing what it was told, and do the limits agree?

The lane state machine (``gate_controller.lane``) decides the arm command (up, down or hold);
this module watches that command being carried out, through the two limit switches: when the
command was given, whether its limit has been reached since, and whether the arm was at rest
down when it was told to hold. From that it names the faults a jammed arm, a dead motor, a
broken limit switch or an arm lifted by hand leave behind (``ARM_TRAVEL_TIMEOUT``,
``LIMIT_CONTRADICTION``; see ``docs/gate-controller.md``, Faults).

It lives apart from the lane so the lane keeps states, decisions and interlocks only. It
decides nothing: it never moves the arm and emits nothing; the lane asks it for a fault on
every poll and alone enters ``fault`` (where a descending arm is stopped, never lowered). Pure
and synchronous like the lane: no I/O, no threads, no clock of its own.
"""

from __future__ import annotations

from gate_controller.signals import ArmCommand, FaultCode, Inputs


def _at_limit(arm: ArmCommand, inputs: Inputs) -> bool:
    """The limit switch for ``arm`` is active: an up command sees arm-up, down sees arm-down."""
    return (arm is ArmCommand.UP and inputs.arm_up) or (
        arm is ArmCommand.DOWN and inputs.arm_down
    )


class ArmTravel:
    """When the current arm command was given and whether its limit has been reached.

    The command itself is the lane's (``Lane.arm``) and is passed in on every call, so there is
    one source of truth for what the motor is told. Not thread-safe (owned by the lane).
    """

    def __init__(self, now: float) -> None:
        #: when the current command was given (the travel clock starts here)
        self.since = now
        #: the command's limit switch has been seen active since it was given
        self.reached = False
        #: the command is hold and the arm was at rest down when it was given
        self.hold_from_down = False

    def commanded(self, now: float, arm: ArmCommand, inputs: Inputs) -> None:
        """The lane has just given ``arm``; ``inputs`` is the last snapshot read."""
        self.since = now
        self.hold_from_down = arm is ArmCommand.HOLD and inputs.arm_down
        self.reached = _at_limit(arm, inputs)

    def track(self, arm: ArmCommand, inputs: Inputs) -> None:
        """Note a fresh snapshot: has the limit for the current command been reached?"""
        if _at_limit(arm, inputs):
            self.reached = True

    def fault(
        self, now: float, arm: ArmCommand, inputs: Inputs, timeout_s: float
    ) -> tuple[FaultCode, str] | None:
        """The fault the limit switches show for command ``arm``, with its detail, or None.

        A limit left after it was reached means the arm moved without a command (or a switch
        broke); a limit not reached within ``timeout_s`` means a jammed arm or a dead motor.
        Both limits active at once is checked by the lane before this, for any command.
        """
        elapsed = now - self.since
        if arm is ArmCommand.UP:
            if self.reached and inputs.arm_down:
                return FaultCode.LIMIT_CONTRADICTION, \
                    "arm-down limit active while the arm is held up"
            if not self.reached and elapsed > timeout_s:
                return FaultCode.ARM_TRAVEL_TIMEOUT, \
                    f"arm not up {elapsed:.1f} s after the open command"
        elif arm is ArmCommand.HOLD and self.hold_from_down and not inputs.arm_down:
            # nobody told the motor anything: an arm lifted by hand (or a broken switch)
            return FaultCode.LIMIT_CONTRADICTION, "arm left the down position without a command"
        elif arm is ArmCommand.DOWN:
            if self.reached and not inputs.arm_down:
                return FaultCode.LIMIT_CONTRADICTION, \
                    "arm left the down position without a command"
            if not self.reached and elapsed > timeout_s:
                return FaultCode.ARM_TRAVEL_TIMEOUT, \
                    f"arm not down {elapsed:.1f} s after the close command"
        return None
