"""gate-edge's side of one gate-controller: heartbeats out, lane events in, decisions as tokens.

gate-controller owns the barrier (DESIGN-NOTES §5); gate-edge only ever asks. The link speaks
the IPC protocol of docs/protocols.md through ``gate_controller.client.ControllerClient`` (a
blocking client with its own reader thread). Two choices matter for safety:

* Heartbeats are sent by a task on the daemon's event loop, not by a thread of their own. If
  the loop hangs, heartbeats stop, the controller raises ``HEARTBEAT_LOST`` within
  ``heartbeat_timeout_s`` and refuses every new opening, which is what a hung gate-edge must
  cause.
* After every (re)connection the link asks for the lane's ``status`` and hands it to the lane
  as a ``snapshot`` event: a vehicle that arrived while gate-edge was restarting is still
  decided, and no opening is ever assumed from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from gate_controller.client import ControllerClient
from gate_controller.config import RelayBoardConfig

log = logging.getLogger(__name__)

EventSink = Callable[[dict[str, Any]], None]
StateSink = Callable[[bool, str], None]


class ControllerUnavailable(RuntimeError):
    """No connection to the gate-controller right now; the message says what to check."""


class ControllerLink:
    """One relay board's gate-controller, seen from the asyncio loop."""

    def __init__(self, board: RelayBoardConfig, on_event: EventSink, on_state: StateSink, *,
                 heartbeat_s: float | None = None, reconnect_s: float = 1.0,
                 request_timeout_s: float = 2.0) -> None:
        self.board = board
        self.path = board.socket_path()
        self._on_event = on_event
        self._on_state = on_state
        # Three heartbeats per timeout: one lost datagram never trips HEARTBEAT_LOST.
        self.heartbeat_s = heartbeat_s or max(0.05, board.timing.heartbeat_timeout_s / 3)
        self.reconnect_s = reconnect_s
        self.request_timeout_s = request_timeout_s
        self.client: ControllerClient | None = None
        self.connected = False
        self.last_error = "not connected yet"
        self._task: asyncio.Task[None] | None = None
        self._pump: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    async def start(self) -> None:
        """Connect in the background; the lane stays shut (refer) until the link is up."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name=f"controller-{self.board.name}")

    async def stop(self) -> None:
        """Stop heartbeats and close; the controller then keeps every barrier safe on its own."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._close()

    # -- requests ------------------------------------------------------------------------------
    async def decide(self, action: str, event_id: str, passage_id: str,
                     reasons: list[str]) -> dict[str, Any]:
        """Send a decision; ``open`` carries a fresh one-shot token. Returns the reply."""
        msg: dict[str, Any] = {"v": 1, "type": "decision", "action": action,
                               "event_id": event_id, "passage_id": passage_id,
                               "reasons": reasons[:32]}
        if action == "open":
            msg["token"] = secrets.token_urlsafe(18)
            msg["issued_at"] = round(time.time(), 3)
        return await self._request(msg)

    async def officer(self, command: str, officer: str, reason: str,
                      passage_id: str | None = None) -> dict[str, Any]:
        """Relay an (already authenticated and audited) officer command."""
        msg: dict[str, Any] = {"v": 1, "type": "officer", "command": command,
                               "officer": officer[:64], "reason": (reason or "-")[:200]}
        if passage_id:
            msg["passage_id"] = passage_id
        return await self._request(msg)

    async def _request(self, msg: dict[str, Any]) -> dict[str, Any]:
        client = self.client
        if client is None or client.closed.is_set():
            raise ControllerUnavailable(
                f"gate-controller of {self.board.name} is not connected ({self.last_error}); "
                f"check `systemctl status gate-controller@{self.board.name}` and {self.path}")
        try:
            return await asyncio.to_thread(client.request, msg, self.request_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise ControllerUnavailable(f"gate-controller of {self.board.name}: {exc}") from exc

    # -- connection ----------------------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            try:
                client = await asyncio.to_thread(ControllerClient, self.path,
                                                 timeout=self.request_timeout_s)
            except OSError as exc:
                failures += 1
                self._set_state(False, f"cannot connect to {self.path}: {exc.strerror or exc}",
                                log_it=failures == 1 or failures % 60 == 0)
                await asyncio.sleep(self.reconnect_s)
                continue
            failures = 0
            self.client = client
            try:
                client.heartbeat()
                status = await asyncio.to_thread(client.status)
            except (OSError, TimeoutError) as exc:
                self._set_state(False, f"status request failed: {exc}")
                self._close()
                await asyncio.sleep(self.reconnect_s)
                continue
            self._set_state(True, "connected")
            self._deliver({"event": "snapshot", "board": self.board.name,
                           "lane": self.board.lane, "status": status})
            self._pump = threading.Thread(target=self._pump_events, args=(client,),
                                          name=f"gc-events-{self.board.name}", daemon=True)
            self._pump.start()
            try:
                while not client.closed.is_set():
                    client.heartbeat()
                    await asyncio.sleep(self.heartbeat_s)
            except OSError as exc:
                self.last_error = f"heartbeat failed: {exc}"
            self._set_state(False, "connection to gate-controller lost; reconnecting")
            self._close()
            await asyncio.sleep(self.reconnect_s)

    def _pump_events(self, client: ControllerClient) -> None:
        """Reader side: lane events from the client's queue to the loop, in order."""
        while not client.closed.is_set():
            try:
                event = client.events.get(timeout=0.5)
            except queue.Empty:
                continue
            self._deliver(event)
        # Events queued just before the socket closed still count.
        while True:
            try:
                self._deliver(client.events.get_nowait())
            except queue.Empty:
                return

    def _deliver(self, event: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.current_thread() is threading.main_thread() and loop.is_running():
            loop.call_soon(self._on_event, event)
        else:
            with contextlib.suppress(RuntimeError):   # loop closed during shutdown
                loop.call_soon_threadsafe(self._on_event, event)

    def _set_state(self, up: bool, detail: str, *, log_it: bool = True) -> None:
        changed = up != self.connected
        self.connected = up
        self.last_error = "" if up else detail
        if changed or log_it:
            if up:
                log.info("gate-controller %s connected at %s", self.board.name, self.path)
            elif log_it:
                log.warning("gate-controller %s: %s; lane %s refers every truck until it is back",
                            self.board.name, detail, self.board.lane)
        self._on_state(up, detail)

    def _close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()
