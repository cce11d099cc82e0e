"""One lane at run time: controller events and reads in, a decision per truck out.

The lane follows gate-controller's events (docs/protocols.md): ``vehicle_present`` opens a
passage in the ``LaneAssembler`` (which already holds the reads of the pre-roll), the assembler
says when the passage is ready, the matcher decides on the store thread, the passage is saved
with its decision, audit row and outbox message in one commit, and only then is the decision
sent to gate-controller: ``open`` as a one-shot token for the controller's own ``event_id``,
so a decision can never open the barrier for another vehicle. ``cleared`` closes the passage
with what the barrier did. Everything an officer needs goes to the ``LaneFeed``.

A lane without a controller link (no relay board configured, or the link down) still reads,
decides and records; nothing can open there, and the feed says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from edge.config import GateEdgeConfig
from edge.config.lanes import LaneConfig
from edge.console.feed import CommandResult, LaneFeed, OfficerCommand
from edge.daemon.controller import ControllerLink, ControllerUnavailable
from edge.daemon.evidence import EvidenceStore
from edge.daemon.ports import LaneMetrics, Occupancy
from edge.daemon.store import DaemonStore
from edge.domain.model import (
    ContainerRead,
    Decision,
    Outcome,
    Passage,
    PlateRead,
    ReasonCode,
    SealRead,
    utcnow,
)
from edge.lanes.assembly import AssemblyTiming, LaneAssembler, PassageSession, Read
from edge.sync.downlink import LaneCommand

log = logging.getLogger(__name__)
T = TypeVar("T")

#: how often a lane looks for a passage that has become due; a vehicle_present or a read
#: wakes it at once, so this bounds only the settle timer's overshoot
TICK_S = 0.02
PRE_ROLL_CROPS = 50
# Reasons that may only mean "not read yet" (or "not read surely yet": more frames of a plate
# can make its read sure): worth waiting for until the deadline.
LATE_READS = {ReasonCode.CONTAINER_MISSING, ReasonCode.SEAL_MISSING, ReasonCode.TRAILER_NOT_READ,
              ReasonCode.PLATE_NOT_READ, ReasonCode.LOW_CONFIDENCE}
# The controller's refusals of an open token that mean "the clocks disagree" (or a step).
CLOCK_REFUSALS = {"token_from_future", "token_expired", "token_before_start"}
_BARRIER = {"up": "up", "down": "down", "between": "moving", "contradictory": "unknown"}
# Events worth keeping with the passage (what the barrier did for this truck).
_PASSAGE_EVENTS = {"state", "opening", "direction", "tailgating", "cleared", "reopened",
                   "referred", "held", "fault"}


class LaneRuntime:
    """Runs one lane (see module docstring)."""

    def __init__(self, lane: LaneConfig, cfg: GateEdgeConfig, *, store: DaemonStore,
                 feed: LaneFeed, evidence: EvidenceStore, link: ControllerLink | None = None,
                 cameras: list[Occupancy] | None = None, metrics: LaneMetrics | None = None,
                 notify_outbox: Any = None) -> None:
        self.lane = lane
        self.cfg = cfg
        self.store = store
        self.feed = feed
        self.evidence = evidence
        self.link = link
        self.cameras = cameras or []
        self.metrics = metrics
        self._notify_outbox = notify_outbox or (lambda: None)
        timing = cfg.passages
        rear = {c.name for c in cfg.cameras if c.role != "tractor"}
        self.assembler = LaneAssembler(
            lane.id, AssemblyTiming(pre_roll=timing.pre_roll, settle=timing.settle,
                                    deadline=timing.deadline, trailer_wait=timing.trailer_wait),
            expects_trailer=any(name in rear for name in lane.cameras),
            sure=cfg.policy.min_plate_confidence)
        self.controller_state = "unknown"
        self.event_id: str | None = None
        self._present_mono: float | None = None
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._crops: dict[str, list[str]] = {}
        self._decisions: set[asyncio.Task[None]] = set()
        self._deciding: asyncio.Task[None] | None = None
        self._held_back: dict[str, int] = {}
        self._resuming: asyncio.Task[None] | None = None
        self._sent: dict[str, Decision] = {}   # what the controller was last told, per passage
        self._failures = 0
        self._failing_since = 0.0
        self._retry_after = 0.0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.decided = 0

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start deciding; reads and events may arrive from now on."""
        self._task = asyncio.create_task(self._ticker(), name=f"lane-{self.lane.id}")

    async def stop(self) -> None:
        """Stop the ticker after the decisions in flight are saved and sent."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._decisions:
            await asyncio.gather(*self._decisions, return_exceptions=True)

    def pending(self) -> bool:
        """A truck is on the lane and not decided yet (shutdown waits for it)."""
        current = self.assembler.current
        deciding = self._deciding is not None and not self._deciding.done()
        return deciding or (current is not None and current.decided_at is None)

    async def _ticker(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            self._wake.clear()
            try:
                now = utcnow()
                session = self.assembler.due(now)
                if session is not None and (self._waiting(session, now)
                                            or self._resuming is not None
                                            or time.monotonic() < self._retry_after):
                    continue
                if session is not None and (self._deciding is None or self._deciding.done()):
                    self._deciding = task = asyncio.create_task(self._decide(session))
                    self._decisions.add(task)
                    task.add_done_callback(self._decisions.discard)
            except Exception:
                log.exception("lane %s: passage assembly failed; the lane keeps running",
                              self.lane.id)

    # -- reads ---------------------------------------------------------------------------------
    def add_read(self, read: Read, crop: bytes | None = None) -> None:
        """A final plate/container read or a seal read for this lane (called on the loop)."""
        if crop:
            name = self.evidence.save(crop, "plate" if isinstance(read, PlateRead)
                                      else "container")
            if name is not None:
                read = read.model_copy(update={"crop_ref": name})
        at = utcnow()
        session = self.assembler.add(read, at)
        if session is not None and session.decided_at is None:
            self._wake.set()
            log.debug("lane %s: %s read %s added to passage %s %.0f ms after the loop",
                      self.lane.id, type(read).__name__, _read_label(read), session.id,
                      (at - session.opened_at).total_seconds() * 1000)
        if self.metrics is not None:
            kind = ("seal" if isinstance(read, SealRead) else "container"
                    if isinstance(read, ContainerRead) else
                    "trailer_plate" if read.role == "trailer" else "plate")
            device = read.reader if isinstance(read, SealRead) else read.camera
            self.metrics.count_read(self.lane.id, kind, device)
        if isinstance(read, PlateRead) and read.role == "tractor":
            self.feed.update_lane(self.lane.id, plate=read.text,
                                  plate_confidence=read.confidence,
                                  crop_ref=getattr(read, "crop_ref", None))
        crop_ref = getattr(read, "crop_ref", None)
        if crop_ref:
            # Crops of reads waiting for the next truck are kept under "" (a bounded pre-roll).
            crops = self._crops.setdefault(session.id if session is not None else "", [])
            crops.append(crop_ref)
            if session is None and len(crops) > PRE_ROLL_CROPS:
                self.evidence.forget(crops[:-PRE_ROLL_CROPS])
                del crops[:-PRE_ROLL_CROPS]

    # -- controller events ---------------------------------------------------------------------
    def on_event(self, ev: dict[str, Any]) -> None:
        """One lane event from gate-controller (called on the loop, in order)."""
        try:
            self._on_event(ev)
        except Exception:
            log.exception("lane %s: controller event %r could not be handled", self.lane.id,
                          ev.get("event"))

    def _on_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        now = utcnow()
        session = self.assembler.current
        if session is not None and kind in _PASSAGE_EVENTS and (
                ev.get("event_id") in (None, session.controller_event)):
            self._events.setdefault(session.id, []).append(_compact(ev))
        if kind == "snapshot":
            status = ev.get("status") or {}
            self._set_state(str(status.get("state", "unknown")))
            self.feed.update_lane(self.lane.id, barrier=_BARRIER.get(str(status.get("barrier")),
                                                                     "unknown"),
                                  faults=tuple(a for a in status.get("alarms", []) or []))
            if status.get("state") in ("vehicle_present", "deciding") and status.get("event_id"):
                # gate-edge (re)started with a truck waiting: decided before the restart?
                self._vehicle_present(str(status["event_id"]), now, resume=True)
            elif status.get("passage_id") and status.get("state") in ("open", "passing",
                                                                       "closing"):
                self._adopt(str(status["passage_id"]), status.get("event_id"), now)
        elif kind == "vehicle_present":
            self._vehicle_present(str(ev.get("event_id")), now)
        elif kind == "state":
            self._set_state(str(ev.get("state")))
        elif kind == "opening":
            if self._present_mono is not None and self.metrics is not None:
                self.metrics.observe_lane_latency(self.lane.id,
                                                  time.monotonic() - self._present_mono)
        elif kind == "tailgating":
            self.assembler.tailgating(now)
            self._alarm("TAILGATING", "a second vehicle entered before the first cleared",
                        {"event_id": ev.get("event_id")})
        elif kind == "cleared":
            self._cleared(now)
        elif kind == "barrier":
            self.feed.update_lane(self.lane.id, barrier=_BARRIER.get(str(ev.get("position")),
                                                                     "unknown"))
        elif kind == "fault":
            code = str(ev.get("code"))
            self.feed.update_lane(self.lane.id, faults=(code,))
            self._alarm(f"LANE_FAULT_{code}", str(ev.get("detail") or code),
                        {"board": ev.get("board")}, severity="critical")
        elif kind == "alarm" and ev.get("alarm") == "HEARTBEAT_LOST" and ev.get("active"):
            log.warning("lane %s: gate-controller reports lost heartbeats", self.lane.id)

    def _set_state(self, state: str) -> None:
        self.controller_state = state
        changes: dict[str, Any] = {"state": state}
        if state == "idle":
            changes["faults"] = ()
        self.feed.update_lane(self.lane.id, **changes)

    def _vehicle_present(self, event_id: str, now: datetime, *, resume: bool = False) -> None:
        current = self.assembler.current
        if (current is not None and current.decided_at is not None
                and current.controller_event == event_id):
            # The link came back while our truck still waits: send the same decision again
            # (a fresh token for open), never a second passage for one truck.
            if resume and current.id in self._sent:
                self._spawn(self._send(current, self._sent[current.id]))
            return
        session = self.assembler.vehicle_present(now, event_id)
        events = self._events.setdefault(session.id, [])
        if not any(e.get("event_id") == event_id for e in events):
            events.append({"event": "vehicle_present", "event_id": event_id,
                           "at": now.isoformat()})
        if session.controller_event != event_id:
            session.controller_event = event_id   # same truck rolled back onto the loop
        if self.event_id != event_id:
            self._present_mono = time.monotonic()
        self.event_id = event_id
        self._crops.setdefault(session.id, []).extend(self._crops.pop("", []))
        for cam in self.cameras:
            cam.set_occupied(True)
        self.feed.update_lane(self.lane.id, passage_id=session.id, plate=None,
                              plate_confidence=None, crop_ref=None, outcome=None, reasons=(),
                              decided_by=None)
        log.info("lane %s: vehicle present (event %s), passage %s", self.lane.id, event_id,
                 session.id)
        self._wake.set()  # reads from the approach may already make it due
        if resume and session.decided_at is None:
            self._resuming = task = asyncio.get_running_loop().create_task(
                self._resume(session, event_id))
            self._decisions.add(task)
            task.add_done_callback(self._decisions.discard)

    async def _resume(self, session: PassageSession, event_id: str) -> None:
        """A decision saved before a restart for this very vehicle is acted on, not redone.

        Deciding again would record a second passage for one truck; the saved decision (with
        its audit row and outbox message) is the one the centre already has or will get.
        """
        try:
            found = await self.store.open_passage(self.lane.id, event_id)
            if found is None or session.decided_at is not None:
                return
            passage_id, decision = found
            log.info("lane %s: passage %s was decided (%s) before gate-edge restarted; "
                     "sending that decision for event %s", self.lane.id, passage_id,
                     decision.outcome.value, event_id)
            self._events[passage_id] = self._events.pop(session.id, [])
            self._crops[passage_id] = self._crops.pop(session.id, [])
            session.id = passage_id
            self.assembler.decided(session, utcnow())
            self.feed.update_lane(self.lane.id, passage_id=passage_id,
                                  outcome=decision.outcome.value,
                                  reasons=tuple(r.value for r in decision.reasons))
            await self._send(session, decision)
        except Exception:
            log.exception("lane %s: could not look up an earlier decision; deciding afresh",
                          self.lane.id)
        finally:
            self._resuming = None

    def _adopt(self, passage_id: str, event_id: Any, now: datetime) -> None:
        """After a restart the barrier is already open for our passage: follow it to the end."""
        session = self.assembler.vehicle_present(now, str(event_id) if event_id else None)
        self._events[passage_id] = self._events.pop(session.id, [])
        session.id = passage_id
        self.assembler.decided(session, now)
        self.event_id = str(event_id) if event_id else None
        self.feed.update_lane(self.lane.id, passage_id=passage_id)
        log.info("lane %s: barrier already open for passage %s; following it until it clears",
                 self.lane.id, passage_id)

    def _cleared(self, now: datetime) -> None:
        for cam in self.cameras:
            cam.set_occupied(False)
        session = self.assembler.cleared(now)
        self.event_id = None
        self._present_mono = None
        if session is None:
            return
        task = asyncio.create_task(self._finish(session, now))
        self._decisions.add(task)
        task.add_done_callback(self._decisions.discard)

    # -- deciding ------------------------------------------------------------------------------
    def _waiting(self, session: PassageSession, now: datetime) -> bool:
        """Held back for late reads, and nothing new arrived, and the deadline is not reached."""
        held = self._held_back.get(session.id)
        return (held is not None and held == session.revision
                and now - session.opened_at < self.cfg.passages.deadline)

    async def _decide(self, session: PassageSession) -> None:
        at = utcnow()
        try:
            if await self._worth_waiting(session, at):
                return
            self.assembler.decided(session, at)
            self._held_back.pop(session.id, None)
            passage = await self._record_decision(session, at)
        except Exception as exc:
            # Nothing was recorded, so nothing was sent: the barrier stays shut and the passage
            # is tried again in a second (a full disk freed, a locked file released).
            self._failures += 1
            if self._failures == 1:
                self._failing_since = time.monotonic()
            full = self._log_save_failure(exc, self._failures, f"passage {session.id}",
                                          "The barrier stays shut and the truck waits; the "
                                          "save is retried every second")
            session.decided_at = None
            self._retry_after = time.monotonic() + 1.0
            self.feed.update_lane(self.lane.id, outcome="refer",
                                  reasons=("SAVE_FAILED", "DISK_FULL") if full
                                  else ("SAVE_FAILED",))
            return
        if self._failures:
            log.warning("lane %s: passage %s saved after %d failed tries (%.1f s); the lane "
                        "decides normally again", self.lane.id, session.id, self._failures,
                        time.monotonic() - self._failing_since)
        self._failures = 0
        assert passage.decision is not None
        await self._send(session, passage.decision)

    async def _worth_waiting(self, session: PassageSession, at: datetime) -> bool:
        """A refer only for reads still missing, before the deadline: wait for them.

        The rear camera sees the container doors and the reader the seals some seconds after
        the tractor plate; referring a cleared truck because its container was not in view
        yet would send it to an officer for nothing. The matcher is pure, so asking it early
        costs a fraction of a millisecond and records nothing.
        """
        if at - session.opened_at >= self.cfg.passages.deadline:
            return False
        decision = await self.store.decide(session.reads(at), self.lane)
        if decision.outcome == Outcome.OPEN or not set(decision.reasons) <= LATE_READS:
            return False
        self._held_back[session.id] = session.revision
        return True

    async def _record_decision(self, session: PassageSession, at: datetime) -> Passage:
        reads = session.reads(at)
        decision = await self.store.decide(reads, self.lane)
        crops = self._crops.get(session.id, [])
        passage = Passage(id=session.id, lane=self.lane.id, started_at=session.opened_at,
                          reads=reads, decision=decision,
                          barrier_events=tuple(self._events.get(session.id, [])),
                          evidence=tuple(self.evidence.entries(crops)))
        await self.store.save(passage)
        self.decided += 1
        try:   # on record now: nothing after this may make the lane decide the truck twice
            self._notify_outbox()
            self.feed.publish_passage(passage)
            if self.metrics is not None:
                elapsed = (time.monotonic() - self._present_mono
                           if self._present_mono is not None else None)
                self.metrics.observe_decision(self.lane.id, decision.outcome.value,
                                              [r.value for r in decision.reasons], elapsed)
        except Exception:
            log.exception("lane %s: passage %s saved, but the console or metrics were not "
                          "updated", self.lane.id, session.id)
        last = session.last_read_at
        log.info("lane %s: passage %s %s %s; decided %.0f ms after the loop (last read %s)",
                 self.lane.id, session.id, decision.outcome.value.upper(),
                 ", ".join(r.value for r in decision.reasons) or "(all checks passed)",
                 (at - session.opened_at).total_seconds() * 1000,
                 "before it" if last is None or last <= session.opened_at
                 else f"{(last - session.opened_at).total_seconds() * 1000:.0f} ms after it")
        if decision.outcome == Outcome.HOLD:
            self._alarm("HOLD", f"truck held at lane {self.lane.id}",
                        {"passage_id": session.id,
                         "reasons": [r.value for r in decision.reasons]}, severity="critical")
        return passage

    async def _send(self, session: PassageSession, decision: Decision) -> None:
        """Tell gate-controller the recorded ``decision`` (``open`` as a fresh token)."""
        self._sent = {session.id: decision}
        event_id = session.controller_event
        if self.link is None or event_id is None:
            return
        action, reasons = decision.outcome.value, [r.value for r in decision.reasons]
        try:
            reply = await self.link.decide(action, event_id, session.id, reasons)
        except ControllerUnavailable as exc:
            reply = {"ok": False, "error": "controller_unavailable", "message": str(exc)}
        self._events.setdefault(session.id, []).append(
            {"event": "decision_sent", "action": action, "ok": bool(reply.get("ok")),
             "error": reply.get("error"), "at": utcnow().isoformat()})
        if reply.get("error") in CLOCK_REFUSALS and action == "open":
            await self._refer_for_clock(session, decision, reply)
        elif not reply.get("ok"):
            log.warning("lane %s: gate-controller refused %s for passage %s: %s (%s); the "
                        "barrier stays shut", self.lane.id, action, session.id,
                        reply.get("error"), reply.get("message"))

    async def _refer_for_clock(self, session: PassageSession, opened: Decision,
                               reply: dict[str, Any]) -> None:
        """The controller judged the open token by a clock that disagrees with ours.

        Safe as it is (the arm stays down), but no truck would open automatically while the
        clocks disagree: say so once per truck with the fix, tell the centre, and refer the
        truck as a second decision of its passage, recorded like an officer's (decision row,
        audit rows with the refused ``open``, outbox message), so neither the passage list nor
        the audit chain nor the centre shows an opening that never happened. On record (retried
        while records.db cannot be written) before the controller is told, as any decision.
        """
        error, message = reply.get("error"), reply.get("message")
        log.error("lane %s: gate-controller refused the open token for passage %s: %s (%s). "
                  "gate-edge's wall clock and gate-controller's disagree, or the clock was "
                  "stepped; check the time source (timedatectl status, chronyc tracking). The "
                  "truck is referred to an officer", self.lane.id, session.id, error, message)
        reason = ReasonCode.CLOCK_SKEW
        self.feed.update_lane(self.lane.id, outcome="refer", reasons=(reason.value,))
        self._alarm(reason.value, f"open token refused at lane {self.lane.id}: {error} "
                    f"({message}); truck referred", {"passage_id": session.id, "error": error})
        refer = opened.model_copy(update={
            "outcome": Outcome.REFER, "reasons": (reason,), "decided_at": utcnow(),
            "details": (*opened.details, f"open token refused by gate-controller: {error} "
                        f"({message}); referred to an officer")})
        revised, _ = await self._until_saved(
            lambda: self.store.revise(session.id, refer, replaces=opened,
                                      action="barrier.open_refused",
                                      detail={"error": error, "message": message}),
            lambda: f"referral of passage {session.id}", "The barrier stays shut; retrying "
            "every second")
        if revised is None:
            log.warning("lane %s: passage %s was decided by an officer meanwhile; that decision "
                        "stands and the referral is not recorded", self.lane.id, session.id)
            return
        try:
            self._notify_outbox()
            self.feed.publish_passage(revised)
        except Exception:
            log.exception("lane %s: referral of passage %s saved, but the console was not "
                          "updated", self.lane.id, session.id)
        if self.event_id == session.controller_event:   # the truck still waits at the arm
            await self._send(session, refer)

    async def _finish(self, session: PassageSession, now: datetime) -> None:
        """The truck left: record the ending; a truck that left undecided is still recorded.

        Retried while records.db cannot be written: a truck that backed out while nothing
        could be saved would otherwise leave no passage at all.
        """
        undecided = session.decided_at is None
        session.decided_at = session.decided_at or now

        async def record() -> None:
            nonlocal undecided
            if undecided:
                await self._record_decision(session, now)
                undecided = False
                self._events.setdefault(session.id, []).append(
                    {"event": "left_before_decision", "at": now.isoformat()})
            crops = self._crops.get(session.id, [])
            await self.store.close_passage(
                session.id, ended_at=now, barrier_events=self._events.get(session.id, []),
                evidence=self.evidence.entries(crops), reads=session.reads(now))

        _, tries = await self._until_saved(
            record, lambda: f"{'passage' if undecided else 'ending of passage'} {session.id} "
                            "(the truck has left)", "Retrying every second")
        self._events.pop(session.id, None)
        self.evidence.forget(self._crops.pop(session.id, []))
        if tries:
            log.warning("lane %s: passage %s and its ending recorded after %d failed tries",
                        self.lane.id, session.id, tries)

    async def _until_saved(self, save: Callable[[], Awaitable[T]], what: Callable[[], str],
                           then: str) -> tuple[T, int]:
        """Retry ``save`` every second until it succeeds: its result and the failed tries."""
        tries = 0
        while True:
            try:
                return await save(), tries
            except Exception as exc:
                tries += 1
                self._log_save_failure(exc, tries, what(), then)
                await asyncio.sleep(1.0)

    def _log_save_failure(self, exc: BaseException, tries: int, what: str,
                          then: str) -> str | None:
        """Log a record not saved, at the first try and every 60th; returns the disk-full text.

        A full disk is logged with the filesystem and what to free (its cause is known, so no
        traceback); anything else with its traceback.
        """
        full = self.store.disk_full(exc)
        if tries == 1 or tries % 60 == 0:
            if full:
                log.error("lane %s: %s not saved: %s. %s (try %d)", self.lane.id, what, full,
                          then, tries)
            else:
                log.error("lane %s: %s not saved. %s (try %d)", self.lane.id, what, then, tries,
                          exc_info=exc)
        return full

    # -- commands ------------------------------------------------------------------------------
    async def officer(self, command: OfficerCommand) -> CommandResult:
        """An officer's console decision: open moves the arm; keep_closed leaves it shut."""
        if command.action == "keep_closed":
            return CommandResult(True, "the barrier stays closed; direct the truck out of the lane")
        if self.link is None:
            return CommandResult(False, f"lane {self.lane.id} has no relay board configured")
        try:
            reply = await self.link.officer("open", command.user,
                                            f"{command.reason_code}: {command.note}".strip(": "),
                                            command.passage_id)
        except ControllerUnavailable as exc:
            return CommandResult(False, str(exc))
        if reply.get("ok"):
            if self.assembler.current is not None and self.assembler.current.decided_at is None:
                self.assembler.decided(self.assembler.current, utcnow())
            return CommandResult(True, f"barrier {reply.get('state', 'open')}")
        return CommandResult(False, f"{reply.get('error')}: {reply.get('message')}")

    async def central(self, command: LaneCommand) -> None:
        """A verified, signed lane command from the centre."""
        if self.link is None:
            log.warning("central command %s for lane %s ignored: no relay board", command.command,
                        self.lane.id)
            return
        who = f"central:{command.kid}"
        reason = command.reason or f"central command {command.nonce}"
        try:
            if command.command == "open":
                reply = await self.link.officer("open", who, reason, command.passage_id)
            elif command.command == "mode":
                reply = await self.link.officer("auto" if command.mode == "auto" else "manual",
                                                who, reason)
            elif self.event_id is not None and self.assembler.current is not None:
                reply = await self.link.decide("hold", self.event_id,
                                               self.assembler.current.id, ["CENTRAL_HOLD"])
            else:
                reply = {"ok": False, "error": "no_vehicle", "message": "no truck to hold"}
        except ControllerUnavailable as exc:
            reply = {"ok": False, "error": "controller_unavailable", "message": str(exc)}
        log.log(logging.INFO if reply.get("ok") else logging.WARNING,
                "lane %s: central %s (%s): %s", self.lane.id, command.command, command.nonce,
                "done" if reply.get("ok") else f"{reply.get('error')}: {reply.get('message')}")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._decisions.add(task)
        task.add_done_callback(self._decisions.discard)

    def _alarm(self, code: str, message: str, detail: dict[str, Any],
               severity: str = "warning") -> None:
        async def raise_it() -> None:
            try:
                if await self.store.alarm(code, message, severity=severity,
                                          detail={"lane": self.lane.id, **detail}):
                    self._notify_outbox()
            except Exception:
                log.exception("lane %s: alarm %s not recorded", self.lane.id, code)
        self._spawn(raise_it())


def _read_label(read: Read) -> str:
    if isinstance(read, SealRead):
        return f"{read.seal_id} ({read.status.value})"
    return f"{read.text} ({getattr(read, 'role', 'container')})"


def _compact(ev: dict[str, Any]) -> dict[str, Any]:
    keep = ("event", "ts", "state", "by", "direction", "passed", "reason", "code", "detail",
            "second_event_id")
    return {k: ev[k] for k in keep if k in ev}
