"""The gate-controller daemon: a control thread that owns the board, an asyncio IPC server.

Why a thread and not ``asyncio.to_thread`` per Modbus call: the lane and the serial line must
be driven by exactly one owner in a strict order (command → write → read back → poll), and a
blocking pymodbus call (up to timeout x retries when a board dies) must never stall IPC. So the
``ControlLoop`` thread owns ``ControlCore`` outright and runs the cycle synchronously; the
event loop only parses lines, hands messages over a queue with a Future for the reply, and
fans lane events out to connected clients. No lock is needed around the lane.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gate_controller.board import BoardIO, ModbusRelayBoard
from gate_controller.config import RelayBoardConfig
from gate_controller.core import ControlCore, Message
from gate_controller.ipc import (
    MAX_LINE_BYTES,
    ProtocolError,
    encode,
    parse_line,
    reply,
)

logger = logging.getLogger(__name__)

CLIENT_QUEUE = 1000

_Item = tuple[Message, "concurrent.futures.Future[dict[str, Any]]"]


class ControlLoop(threading.Thread):
    """Owns the ControlCore; polls the board and applies queued messages in order."""

    def __init__(
        self,
        core: ControlCore,
        publish: Callable[[list[dict[str, Any]]], None],
        *,
        watchdog: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=f"control-{core.config.name}", daemon=True)
        self.core = core
        self.publish = publish
        self.watchdog = watchdog
        self.inbox: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self.started_ok = threading.Event()
        self._stop_flag = threading.Event()

    def submit(self, msg: Message) -> concurrent.futures.Future[dict[str, Any]]:
        """Queue a message; the Future resolves to its reply."""
        fut: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        self.inbox.put((msg, fut))
        return fut

    def stop(self) -> None:
        """Ask the loop to end after the current cycle and wait for it."""
        self._stop_flag.set()
        self.inbox.put(None)
        if self.is_alive():
            self.join(timeout=5)

    def run(self) -> None:
        """Cycle until stopped; a bug in one cycle is logged and the loop carries on."""
        core = self.core
        interval = core.config.timing.poll_interval_s
        self.publish(core.start(time.monotonic(), time.time()))
        self.started_ok.set()
        next_poll = time.monotonic()
        while not self._stop_flag.is_set():
            try:
                item = self.inbox.get(timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                item = None
            try:
                while item is not None:
                    msg, fut = item
                    result = core.handle(msg, time.monotonic(), time.time())
                    fut.set_result(result)
                    try:
                        item = self.inbox.get_nowait()
                    except queue.Empty:
                        item = None
                if time.monotonic() >= next_poll:
                    core.poll(time.monotonic())
                    next_poll = time.monotonic() + interval
                    if self.watchdog is not None:
                        self.watchdog()
            except Exception:  # a bug must not silence the barrier's guard
                logger.exception("control cycle failed; continuing")
            self.publish(core.events(time.time()))
        with contextlib.suppress(Exception):
            core.board.close()


class GateController:
    """The daemon: start() brings parts up in order, stop() takes them down in reverse."""

    def __init__(
        self,
        config: RelayBoardConfig,
        *,
        board_factory: Callable[[RelayBoardConfig], BoardIO] = ModbusRelayBoard,
        socket_path: Path | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.board_factory = board_factory
        self.socket_path = socket_path or Path(config.socket_path())
        self.notify = notify or (lambda _msg: None)
        self._clients: set[asyncio.Queue[bytes | None]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self.control: ControlLoop | None = None
        self.bad_lines = 0

    async def start(self) -> None:
        """Board, control thread, IPC socket, then tell systemd we are ready."""
        self._loop = asyncio.get_running_loop()
        board = self.board_factory(self.config)
        core = ControlCore(self.config, board, now=time.monotonic(), wall=time.time())
        self.control = ControlLoop(core, self._publish_threadsafe,
                                   watchdog=lambda: self.notify("WATCHDOG=1"))
        self.control.start()
        await asyncio.get_running_loop().run_in_executor(None, self.control.started_ok.wait, 10)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(
            self._client, path=str(self.socket_path), limit=MAX_LINE_BYTES + 2
        )
        self.socket_path.chmod(0o660)
        logger.info("gate-controller %s (lane %s) on %s, IPC at %s", self.config.name,
                    self.config.lane, self.config.port, self.socket_path)
        self.notify("READY=1")

    async def stop(self) -> None:
        """Reverse of start(): IPC socket, clients, control thread (closes the port)."""
        self.notify("STOPPING=1")
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        if self.control is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.control.stop)

    async def serve_forever(self, stop: asyncio.Event) -> None:
        """start(), wait for ``stop``, stop()."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # ------------------------------------------------------------------ IPC
    def _publish_threadsafe(self, events: list[dict[str, Any]]) -> None:
        if events and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._publish, events)

    def _publish(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            logger.info("event %s", event)
            line = encode(event)
            for q in list(self._clients):
                try:
                    q.put_nowait(line)
                except asyncio.QueueFull:
                    logger.warning("IPC client too slow (%d events queued); disconnecting it",
                                   CLIENT_QUEUE)
                    self._clients.discard(q)
                    with contextlib.suppress(asyncio.QueueFull):
                        q.put_nowait(None)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        out: asyncio.Queue[bytes | None] = asyncio.Queue(CLIENT_QUEUE)
        self._clients.add(out)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        sender = asyncio.create_task(self._send(out, writer))
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break
                except asyncio.LimitOverrunError:
                    await self._reject(out, ProtocolError("line_too_long",
                                                          f"line over {MAX_LINE_BYTES} bytes"))
                    break
                if not line.strip():
                    continue
                await self._dispatch(line, out)
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            sender.cancel()
            writer.close()
            self._clients.discard(out)
            return
        finally:
            self._clients.discard(out)
        with contextlib.suppress(asyncio.QueueFull):
            out.put_nowait(None)
        await sender

    async def _dispatch(self, line: bytes, out: asyncio.Queue[bytes | None]) -> None:
        try:
            msg = parse_line(line)
        except ProtocolError as exc:
            await self._reject(out, exc)
            return
        assert self.control is not None
        fut = self.control.submit(msg)
        result = await asyncio.wrap_future(fut)
        if msg.id is not None or not result.get("ok"):
            # like JSON-RPC notifications: no id, no success reply (heartbeats stay quiet)
            await out.put(encode(result))

    async def _reject(self, out: asyncio.Queue[bytes | None], exc: ProtocolError) -> None:
        self.bad_lines += 1
        logger.warning("IPC: rejected line: %s (%s)", exc.code, exc.message)
        await out.put(encode(reply(exc.msg_id, False, error=exc.code, message=exc.message)))

    @staticmethod
    async def _send(out: asyncio.Queue[bytes | None], writer: asyncio.StreamWriter) -> None:
        try:
            while (line := await out.get()) is not None:
                writer.write(line)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
