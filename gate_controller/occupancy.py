"""Loops and photocell over time: the facts a lane can only learn from a history of inputs.

One input snapshot says what is on the loops and across the beam now. The lane state machine
(``gate_controller.lane``) also needs what follows from a sequence of snapshots: how long the
lane has been clear (the settle time before closing), how long each loop has been occupied (a
stuck loop detector), which loop the vehicle reached first (its direction) and whether the
arrival loop or the beam was re-occupied after clearing (a second vehicle, tailgating).

That bookkeeping lives here so the lane keeps only states, decisions and the arm. This module
decides nothing and reports nothing: it never touches the arm, raises no alarm and emits no
event. It answers with facts, and the lane alone turns them into transitions, faults, alarms
and events, so every interlock is still decided in ``lane`` (DESIGN-NOTES §5). Like the lane it
is pure and synchronous: no I/O, no threads, no clock of its own.
"""

from __future__ import annotations

from gate_controller.signals import Inputs

#: the two induction loops, in the order they are checked (and stuck-loop faults are reported)
LOOPS = ("entry_loop", "exit_loop")


class Occupancy:
    """What one lane's loops and photocell have shown; not thread-safe (owned by the lane)."""

    def __init__(self) -> None:
        self._clear_since: float | None = None
        self._occupied_since: dict[str, float | None] = dict.fromkeys(LOOPS)
        self._loop_order: list[str] = []
        self._tail_loop_cleared = False
        self._beam_broken = self._beam_cleared = self._tailgated = False

    @property
    def first_loop(self) -> str | None:
        """The loop the current vehicle was first seen on, if any."""
        return self._loop_order[0] if self._loop_order else None

    def track(self, now: float, inputs: Inputs) -> None:
        """Run the clear clock and the per-loop occupied clocks on every fresh snapshot."""
        if inputs.occupied:
            self._clear_since = None
        elif self._clear_since is None:
            self._clear_since = now
        for loop in LOOPS:
            if getattr(inputs, loop):
                if self._occupied_since[loop] is None:
                    self._occupied_since[loop] = now
            else:
                self._occupied_since[loop] = None

    def settled(self, now: float, settle_s: float) -> bool:
        """Both loops and the photocell have read clear for at least ``settle_s``."""
        since = self._clear_since
        return since is not None and now - since >= settle_s

    def stuck_loop(self, now: float, stuck_s: float) -> tuple[str, float] | None:
        """The first loop occupied without a break for ``stuck_s`` or more, and for how long.

        No vehicle stands on a loop that long; a detector that keeps reporting one is broken
        (or the loop is), so the lane faults rather than wait for a vehicle that is not there.
        """
        for loop, since in self._occupied_since.items():
            if since is not None and now - since >= stuck_s:
                return loop, now - since
        return None

    def reset(self, now: float, inputs: Inputs) -> None:
        """Start over from ``inputs`` (the lane takes over a board it did not set)."""
        self._clear_since = None if inputs.occupied else now
        for loop in LOOPS:
            # a loop that stays occupied across a reset keeps its clock (stuck-loop detection)
            since = self._occupied_since[loop]
            self._occupied_since[loop] = (since if since is not None else now) \
                if getattr(inputs, loop) else None
        self._loop_order = []
        self._tail_loop_cleared = False
        self._beam_broken = self._beam_cleared = self._tailgated = False

    def new_vehicle(self) -> None:
        """Forget the loop order and the tailgating watch: a new presence event begins.

        The clear and occupied clocks run on: they describe the lane, not one vehicle.
        """
        self._loop_order = []
        self.watch_for_tailgating()

    def watch_for_tailgating(self) -> None:
        """Look for a second vehicle from now on (the arm is opening for the first)."""
        self._tail_loop_cleared = False
        self._beam_broken = self._beam_cleared = self._tailgated = False

    def note_loops(self, inputs: Inputs) -> str | None:
        """Record which loops the vehicle has reached; the direction once both have been seen.

        ``forward`` when the entry loop came first, ``reverse`` when the exit loop did. The
        direction is returned once, on the snapshot that completes the order, and None on
        every other call.
        """
        for name, on in (("entry_loop", inputs.entry_loop), ("exit_loop", inputs.exit_loop)):
            if on and name not in self._loop_order:
                self._loop_order.append(name)
                if len(self._loop_order) == 2:
                    return "forward" if self._loop_order[0] == "entry_loop" else "reverse"
        return None

    def second_vehicle(self, inputs: Inputs, direction: str | None) -> bool:
        """Whether a second vehicle has just entered before the first has cleared.

        The arrival loop or the photocell beam re-occupied after it had cleared during this
        passage. Loops cannot separate vehicles closer than a loop's length; the beam (a point
        sensor) can, so both are watched. True only the first time in a passage.
        """
        # The loop a vehicle arrives on: the entry loop for forward traffic.
        arrival = "exit_loop" if direction == "reverse" else "entry_loop"
        second_vehicle = False
        if getattr(inputs, arrival):
            second_vehicle = self._tail_loop_cleared
            self._tail_loop_cleared = False
        elif arrival in self._loop_order:
            self._tail_loop_cleared = True
        if inputs.photocell:
            second_vehicle = second_vehicle or self._beam_cleared
            self._beam_broken, self._beam_cleared = True, False
        elif self._beam_broken:
            self._beam_cleared = True
        if second_vehicle and not self._tailgated:
            self._tailgated = True
            return True
        return False
