"""Passage assembly: one lane's stream of loop events and reads, cut into passages.

Cameras see a truck before its front wheels reach the entry loop, seal readers catch the seals
as the trailer rolls past, and the gate must decide in well under a second once the truck stops.
The assembler keeps the reads of the last few seconds, opens a passage when gate-controller
reports a vehicle at the entry loop, attaches what belongs to it, and says when the passage is
ready to decide: as soon as the tractor plate is final and nothing new arrived for a short
settle time, or at the deadline with whatever was read (missing reads then become reasons such
as ``PLATE_NOT_READ`` or ``SEAL_MISSING``, never a silent open).

Pure logic, no I/O and no clock of its own: every call carries its timestamp, so the daemon,
the scenario runner and the tests drive it the same way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from edge.domain.model import (
    ContainerRead,
    PassageReads,
    PlateRead,
    SealRead,
    new_passage_id,
)
from edge.domain.plates import dropped_one, fold_confusables

Read = PlateRead | ContainerRead | SealRead


@dataclass(frozen=True)
class AssemblyTiming:
    """How long to look back, settle and wait; see docs/architecture.md (one truck)."""

    pre_roll: timedelta = timedelta(seconds=8)
    settle: timedelta = timedelta(milliseconds=100)
    deadline: timedelta = timedelta(seconds=6)
    trailer_wait: timedelta = timedelta(seconds=3)


@dataclass
class PassageSession:
    """The reads of one truck at one lane, until it is decided and has cleared."""

    lane: str
    opened_at: datetime
    controller_event: str | None = None
    id: str = field(default_factory=new_passage_id)
    tractor: list[PlateRead] = field(default_factory=list)
    trailer: list[PlateRead] = field(default_factory=list)
    containers: list[ContainerRead] = field(default_factory=list)
    seals: list[SealRead] = field(default_factory=list)
    declaration_no: str | None = None
    tailgating: bool = False
    last_read_at: datetime | None = None
    decided_at: datetime | None = None
    cleared_at: datetime | None = None
    sure: float = 0.80  # the matcher's LOW_CONFIDENCE line (policy.min_plate_confidence)
    revision: int = 0  # reads attached so far, kept or not: a lane holding back sees news by it

    def add(self, read: Read, at: datetime) -> None:
        """Attach one read; seal reads of a seal already seen add to its count."""
        self.revision += 1
        if isinstance(read, PlateRead):
            reads = self.trailer if read.role == "trailer" else self.tractor
            for i, prior in enumerate(reads):
                if prior.camera != read.camera:
                    continue
                if dropped_one(read.text, prior.text):
                    self.last_read_at = at
                    return          # the same plate with a character missing: not a 2nd plate
                if dropped_one(prior.text, read.text):
                    # The full plate after a short read replaces it, unless only the short
                    # read is sure: a frame edge read as a digit adds a character too.
                    if read.confidence >= self.sure or prior.confidence < self.sure:
                        reads[i] = read
                    self.last_read_at = at
                    return
                if fold_confusables(prior.text) == fold_confusables(read.text):
                    if read.confidence > prior.confidence:
                        reads[i] = read  # the camera's vote again, surer after more frames
                    self.last_read_at = at
                    return
            reads.append(read)
        elif isinstance(read, ContainerRead):
            if all(c.text != read.text for c in self.containers):
                self.containers.append(read)
        else:
            for i, seen in enumerate(self.seals):
                if seen.seal_id == read.seal_id and seen.reader == read.reader:
                    # Keep the worst status seen: a tampered flag must never be overwritten.
                    worse = read if _seal_rank(read) > _seal_rank(seen) else seen
                    self.seals[i] = worse.model_copy(update={"count": seen.count + read.count})
                    break
            else:
                self.seals.append(read)
        self.last_read_at = at

    def reads(self, at: datetime) -> PassageReads:
        """Everything read so far, as the matcher's input."""
        return PassageReads(
            lane=self.lane, tractor=tuple(self.tractor), trailer=tuple(self.trailer),
            containers=tuple(self.containers), seals=tuple(self.seals),
            declaration_no=self.declaration_no, tailgating=self.tailgating, at=at,
        )


def _seal_rank(read: SealRead) -> int:
    return {"intact": 0, "unknown": 1, "opened": 2, "tampered": 3}.get(read.status.value, 1)


class LaneAssembler:
    """Cuts one lane's events and reads into passages (see module docstring)."""

    def __init__(self, lane: str, timing: AssemblyTiming | None = None,
                 expects_trailer: bool = True, sure: float = 0.80) -> None:
        self.lane = lane
        self.sure = sure
        self.timing = timing or AssemblyTiming()
        self.expects_trailer = expects_trailer
        self.current: PassageSession | None = None
        self._recent: deque[tuple[datetime, Read]] = deque()

    def vehicle_present(self, at: datetime, event_id: str | None = None) -> PassageSession:
        """The entry loop triggered: open a passage and give it the reads of the pre-roll."""
        if self.current is not None and self.current.decided_at is None:
            # Still undecided: the same truck rolled off and on the loop. Keep its passage.
            return self.current
        session = PassageSession(lane=self.lane, opened_at=at, controller_event=event_id,
                                 sure=self.sure)
        self._forget_before(at - self.timing.pre_roll)
        for read_at, read in self._recent:
            session.add(read, read_at)
        self._recent.clear()
        self.current = session
        return session

    def add(self, read: Read, at: datetime) -> PassageSession | None:
        """A read for this lane: attached to the open passage, or kept for the next one."""
        if read.lane != self.lane:
            raise ValueError(f"read for lane {read.lane!r} given to lane {self.lane!r}")
        if self.current is not None and self.current.decided_at is None:
            self.current.add(read, at)
            return self.current
        if self.current is not None and (isinstance(read, SealRead)
                                         or _same_vehicle(read, self.current)):
            # After the decision the truck is still at the barrier: re-reads of its plates and
            # containers and its seals are recorded with it (the officer sees them) but cannot
            # reopen the decision, and must never be carried over to the next truck.
            self.current.add(read, at)
            return self.current
        self._recent.append((at, read))
        self._forget_before(at - self.timing.pre_roll)
        return None

    def tailgating(self, at: datetime) -> None:
        """gate-controller saw a second vehicle enter before the first cleared."""
        if self.current is not None:
            self.current.tailgating = True

    def due(self, now: datetime) -> PassageSession | None:
        """The open passage if it should be decided now, else None."""
        s = self.current
        if s is None or s.decided_at is not None:
            return None
        if now - s.opened_at >= self.timing.deadline:
            return s
        if not s.tractor:
            return None
        if (self.expects_trailer and not s.trailer
                and now - s.opened_at < self.timing.trailer_wait):
            return None
        quiet_since = s.last_read_at or s.opened_at
        return s if now - quiet_since >= self.timing.settle else None

    def decided(self, session: PassageSession, at: datetime) -> None:
        """Mark the passage decided; later reads go to the next one (seals excepted)."""
        session.decided_at = at

    def cleared(self, at: datetime) -> PassageSession | None:
        """The vehicle left the lane: close the passage and return it."""
        session, self.current = self.current, None
        if session is not None:
            session.cleared_at = at
            # Anything still buffered that belongs to the truck that left is not the next one's.
            self._recent = deque((t, r) for t, r in self._recent if not _same_vehicle(r, session))
        return session

    def _forget_before(self, cutoff: datetime) -> None:
        while self._recent and self._recent[0][0] < cutoff:
            self._recent.popleft()


def _same_vehicle(read: Read, session: PassageSession) -> bool:
    """Is this plate or container read one of the session's own (exactly or folded)?"""
    if isinstance(read, PlateRead):
        known = [p.text for p in (*session.tractor, *session.trailer)]
        text = fold_confusables(read.text)
        return any(text == fold_confusables(k) or dropped_one(read.text, k)
                   or dropped_one(k, read.text) for k in known)
    if isinstance(read, ContainerRead):
        return any(c.text == read.text for c in session.containers)
    return False
