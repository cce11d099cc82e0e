"""The console's two seams to the daemon: a live feed in, officer commands out.

``LaneFeed`` is an in-process publish/subscribe hub. The daemon publishes lane state, passages,
device and broker status; every open console page subscribes through Server-Sent Events. It
keeps the latest state of each lane so a page that opens mid-shift shows the lanes at once.
Publishing is safe from any thread (the daemon's loop, a uvicorn worker thread, a test).

``OfficerCommands`` is what the console calls when an officer's decision must move a barrier.
The daemon implements it by sending an officer command to gate-controller, which alone decides
whether the arm may move (DESIGN-NOTES §5). The console never talks to the relay board.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, Protocol

from edge.domain.model import Passage, utcnow

log = logging.getLogger(__name__)

LANE_STATES = ("unknown", "idle", "vehicle_present", "deciding", "open", "passing", "closing",
               "fault", "manual")
BARRIER_POSITIONS = ("unknown", "down", "moving", "up")


@dataclass(frozen=True)
class LaneState:
    """What an officer sees on a lane card."""

    lane: str
    name: str = ""
    state: str = "unknown"
    barrier: str = "unknown"
    faults: tuple[str, ...] = ()
    passage_id: str | None = None
    plate: str | None = None
    plate_confidence: float | None = None
    crop_ref: str | None = None
    outcome: str | None = None
    reasons: tuple[str, ...] = ()
    decided_by: str | None = None
    updated_at: datetime = field(default_factory=utcnow)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for the API and the SSE stream."""
        doc = asdict(self)
        doc["faults"] = list(self.faults)
        doc["reasons"] = list(self.reasons)
        doc["updated_at"] = self.updated_at.isoformat()
        return doc


@dataclass(frozen=True)
class DeviceStatus:
    """A camera, seal reader or relay board as the daemon last saw it."""

    name: str
    kind: str
    ok: bool
    detail: str = ""
    updated_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class FeedEvent:
    """One message to the browsers: ``lane`` (a LaneState), ``passage``, ``health``, ``resync``."""

    kind: Literal["lane", "passage", "health", "resync"]
    data: dict[str, Any]


@dataclass
class _Subscriber:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[FeedEvent]


class LaneFeed:
    """Latest lane states plus a fan-out of every change to subscribers."""

    QUEUE_SIZE = 256

    def __init__(self, lanes: Iterable[tuple[str, str]] = ()) -> None:
        self._lock = threading.Lock()
        self._lanes: dict[str, LaneState] = {lane: LaneState(lane=lane, name=name)
                                             for lane, name in lanes}
        self._devices: dict[str, DeviceStatus] = {}
        self._broker: DeviceStatus | None = None
        self._subscribers: list[_Subscriber] = []

    # -- what the daemon calls -------------------------------------------------------------
    def update_lane(self, lane: str, **changes: Any) -> LaneState:
        """Change some fields of a lane (state, barrier, faults...) and tell every page."""
        with self._lock:
            current = self._lanes.get(lane) or LaneState(lane=lane)
            state = replace(current, **changes, updated_at=changes.get("updated_at", utcnow()))
            self._lanes[lane] = state
        self._publish(FeedEvent("lane", state.to_json()))
        return state

    def publish_passage(self, passage: Passage) -> LaneState:
        """A passage was saved or decided: show its plate and decision on its lane."""
        read = max(passage.reads.tractor, key=lambda r: r.confidence, default=None)
        decision = passage.decision
        state = self.update_lane(
            passage.lane, passage_id=passage.id, plate=read.text if read else None,
            plate_confidence=read.confidence if read else None,
            crop_ref=read.crop_ref if read else None,
            outcome=decision.outcome.value if decision else None,
            reasons=tuple(r.value for r in decision.reasons) if decision else (),
            decided_by=decision.decided_by if decision else None)
        self._publish(FeedEvent("passage", {"id": passage.id, "lane": passage.lane,
                                            "outcome": state.outcome}))
        return state

    def set_device(self, name: str, kind: str, ok: bool, detail: str = "") -> None:
        """Report a device's health (camera, seal reader, relay board)."""
        with self._lock:
            self._devices[name] = DeviceStatus(name, kind, ok, detail)
        self._publish(FeedEvent("health", {"device": name, "ok": ok, "detail": detail}))

    def set_broker(self, connected: bool, detail: str = "") -> None:
        """Report the MQTT link to the centre."""
        with self._lock:
            self._broker = DeviceStatus("broker", "mqtt", connected, detail)
        self._publish(FeedEvent("health", {"device": "broker", "ok": connected,
                                           "detail": detail}))

    # -- what the console reads --------------------------------------------------------------
    def lanes(self) -> list[LaneState]:
        """Every lane's latest state, in configuration order."""
        with self._lock:
            return list(self._lanes.values())

    def lane(self, lane: str) -> LaneState | None:
        """One lane's latest state."""
        with self._lock:
            return self._lanes.get(lane)

    def devices(self) -> list[DeviceStatus]:
        """Devices the daemon reported, by name."""
        with self._lock:
            return sorted(self._devices.values(), key=lambda d: d.name)

    def broker(self) -> DeviceStatus | None:
        """The MQTT link, or None when no daemon reports it (stand-alone console)."""
        with self._lock:
            return self._broker

    @contextlib.asynccontextmanager
    async def subscription(self) -> AsyncIterator[asyncio.Queue[FeedEvent]]:
        """A queue of events for one page, removed when the page goes away."""
        sub = _Subscriber(asyncio.get_running_loop(), asyncio.Queue(self.QUEUE_SIZE))
        with self._lock:
            self._subscribers.append(sub)
        try:
            yield sub.queue
        finally:
            with self._lock:
                self._subscribers.remove(sub)

    def subscriber_count(self) -> int:
        """Open pages (for health and tests)."""
        with self._lock:
            return len(self._subscribers)

    def _publish(self, event: FeedEvent) -> None:
        with self._lock:
            subs = list(self._subscribers)
        # Always through the loop's callback queue, even from the loop itself: that queue is
        # FIFO, so every page sees events in the order they were published, from any thread.
        for sub in subs:
            if not sub.loop.is_closed():
                sub.loop.call_soon_threadsafe(_offer, sub.queue, event)


def _offer(queue: asyncio.Queue[FeedEvent], event: FeedEvent) -> None:
    """Queue an event; a page too slow to keep up gets one ``resync`` and reloads."""
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(FeedEvent("resync", {}))


# -- officer commands ---------------------------------------------------------------------------
@dataclass(frozen=True)
class OfficerCommand:
    """An officer's order for a lane's barrier, tied to one passage and one audit row."""

    command_id: str
    lane: str
    passage_id: str
    action: Literal["open", "keep_closed"]
    user: str
    reason_code: str
    note: str
    at: datetime


@dataclass(frozen=True)
class CommandResult:
    """What gate-controller answered; ``accepted`` False leaves the barrier as it is."""

    accepted: bool
    detail: str


class OfficerCommands(Protocol):
    """Implemented by the daemon: forward officer orders to gate-controller."""

    async def send(self, command: OfficerCommand) -> CommandResult:
        """Deliver one command; never raise for a refusal, return it."""
        ...


class NoGateController:
    """Stand-alone console (no daemon in this process): nothing can move a barrier from here.

    Decisions are still recorded and audited; the officer is told to use the lane panel.
    """

    async def send(self, command: OfficerCommand) -> CommandResult:
        """Refuse, saying why."""
        log.warning("officer command %s for lane %s not delivered: console runs without the "
                    "gate-edge daemon", command.action, command.lane)
        return CommandResult(False, "no gate-controller link: this console runs stand-alone; "
                                    "operate the barrier from the lane panel")
