"""One board and its lane, stepped by a single owner: the control cycle.

``ControlCore`` glues the Lane state machine to a ``BoardIO`` (the Modbus driver in
production, the in-process board model in property tests and the soak benchmark), so exactly
the same cycle code runs in all three. It is synchronous and single-owner: in the daemon it
lives on the control thread (``gate_controller.runtime``); nothing else touches it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gate_controller.board import BoardError, BoardIO
from gate_controller.config import RelayBoardConfig
from gate_controller.ipc import DecisionMsg, HeartbeatMsg, OfficerMsg, StatusMsg, reply, utc_ts
from gate_controller.lane import FaultCode, Lane, LaneEvent, LaneState, Outputs, Rejected

logger = logging.getLogger(__name__)

#: how often the coils are read back without a write (board reset / tampering detection)
VERIFY_INTERVAL_S = 0.5

Message = HeartbeatMsg | DecisionMsg | OfficerMsg | StatusMsg


class ControlCore:
    """The control cycle: apply commands, write outputs, read inputs, tick, write outputs."""

    def __init__(
        self,
        config: RelayBoardConfig,
        board: BoardIO,
        *,
        now: float,
        wall: float,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self.board = board
        kwargs: dict[str, Any] = {"id_factory": id_factory} if id_factory else {}
        self.lane = Lane(config.lane, config.timing, now=now, started_wall=wall, **kwargs)
        self.written: Outputs | None = None
        self.seq = 0
        self.rejections = 0
        self.polls = 0
        self.poll_errors = 0
        self._next_verify = now + VERIFY_INTERVAL_S

    def start(self, now: float, wall: float) -> list[dict[str, Any]]:
        """Read what the board shows (coils and inputs) and take over from there."""
        try:
            coils = self.board.read_outputs()
            inputs = self.board.read_inputs()
        except BoardError as exc:
            self.lane.board_error(now, exc.code, str(exc))
        else:
            self.written = coils
            self.lane.resume(now, inputs, coils)
            self.flush(now)
        return self.events(wall)

    def handle(self, msg: Message, now: float, wall: float) -> dict[str, Any]:
        """Apply one inbound message and return its reply object."""
        try:
            if isinstance(msg, HeartbeatMsg):
                self.lane.heartbeat(now)
                return reply(msg.id, True)
            if isinstance(msg, StatusMsg):
                return reply(msg.id, True, board=self.config.name, lane=self.config.lane,
                             status=self.status())
            if isinstance(msg, DecisionMsg):
                self.lane.decide(now, wall, msg.to_decision())
            else:
                self.lane.officer(now, msg.to_command())
        except Rejected as exc:
            self.rejections += 1
            logger.warning("lane %s: rejected %s %s: %s (%s)", self.config.lane, msg.type,
                           msg.id or "-", exc.code, exc.message)
            return reply(msg.id, False, error=exc.code, message=exc.message)
        self.flush(now)
        return reply(msg.id, True, state=self.lane.state.value)

    def poll(self, now: float) -> None:
        """Read the inputs, run the lane's timers and transitions, write what changed."""
        self.polls += 1
        try:
            inputs = self.board.read_inputs()
        except BoardError as exc:
            self.poll_errors += 1
            self.written = None  # unknown after a lost line: rewrite everything once it is back
            self.lane.board_error(now, exc.code, str(exc))
            return
        self.lane.tick(now, inputs)
        self.flush(now)
        if now >= self._next_verify:
            self.verify(now)

    def verify(self, now: float) -> None:
        """Read the coils back even without a write.

        A board that browned out and restarted has dropped its relays; only reading them
        tells us.
        """
        self._next_verify = now + VERIFY_INTERVAL_S
        coils = self._read_coils(now)
        if coils is None or self.written is None or coils == self.written:
            return
        # Confirm with a second read: a fault needs an officer, so it must not rest on one
        # frame that a noisy line delivered late.
        coils = self._read_coils(now)
        if coils is None or coils == self.written:
            return
        self.written = coils
        self.lane.board_error(now, FaultCode.READBACK_MISMATCH,
                              f"coils changed behind the controller's back: {coils}")

    def _read_coils(self, now: float) -> Outputs | None:
        """FC01, or None after handing the lane the line error."""
        try:
            return self.board.read_outputs()
        except BoardError as exc:
            self.written = None
            self.lane.board_error(now, exc.code, str(exc))
            return None

    def flush(self, now: float) -> None:
        """Write the lane's desired outputs if they differ from what the board has."""
        desired = self.lane.outputs()
        if desired == self.written:
            return
        if self.written is None and self.lane.state is LaneState.FAULT and desired.barrier_open:
            # The line was lost: the board may have reset and dropped its relays. In fault we
            # keep an arm up that is held up, but never raise one again without an officer.
            try:
                actual = self.board.read_outputs()
            except BoardError:
                return
            self.written = actual
            if not actual.barrier_open:
                self.lane.release_arm(now, "open coil found off after the line came back")
                desired = self.lane.outputs()
                if desired == actual:
                    return
        try:
            self.board.write_outputs(desired, self.written)
        except BoardError as exc:
            self.written = None
            self.lane.board_error(now, exc.code, str(exc))
            return
        self.written = desired

    def events(self, wall: float) -> list[dict[str, Any]]:
        """Lane events since the last call, stamped for the wire."""
        return [self._stamp(e, wall) for e in self.lane.drain_events()]

    def status(self) -> dict[str, Any]:
        """Lane snapshot plus board counters."""
        snap = self.lane.snapshot()
        snap["board_errors"] = getattr(self.board, "errors", None)
        snap["board_late_answers"] = getattr(self.board, "stale", None)
        snap["polls"] = self.polls
        snap["rejections"] = self.rejections
        return snap

    def _stamp(self, event: LaneEvent, wall: float) -> dict[str, Any]:
        self.seq += 1
        return {"v": 1, "type": "event", "seq": self.seq, "ts": utc_ts(wall),
                "board": self.config.name, "lane": self.config.lane, "event": event.event,
                **event.data}
