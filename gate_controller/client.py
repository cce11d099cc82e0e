"""A small blocking client of the gate-controller IPC socket.

Used by the CLI, the tests and the benchmarks; gate-edge may use it from a worker thread or
speak the protocol itself (docs/protocols.md). A reader thread splits incoming lines into
replies (matched by id) and lane events (kept in a queue), so events never get lost while a
request waits for its reply.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ControllerClient:
    """Connects to one controller; thread-safe ``request``, ``send`` and ``next_event``."""

    def __init__(self, path: Path | str, *, timeout: float = 5.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(self.path)
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[str, queue.SimpleQueue[dict[str, Any]]] = {}
        self._waiting_lock = threading.Lock()
        self.events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.errors: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name="gc-client", daemon=True)
        self._reader.start()

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests use it for malformed lines)."""
        with self._send_lock:
            self._sock.sendall(data)

    def send(self, msg: dict[str, Any]) -> None:
        """Send one message without waiting (no id: only an error reply comes back)."""
        self.send_raw(json.dumps(msg).encode() + b"\n")

    def request(self, msg: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a message with a fresh id and wait for its reply."""
        msg = {**msg, "id": f"c{next(self._ids)}"}
        box: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        with self._waiting_lock:
            self._waiting[msg["id"]] = box
        try:
            self.send(msg)
            return box.get(timeout=timeout or self.timeout)
        except queue.Empty:
            raise TimeoutError(f"no reply to {msg['type']} within {timeout or self.timeout} s")\
                from None
        finally:
            with self._waiting_lock:
                self._waiting.pop(msg["id"], None)

    def heartbeat(self) -> None:
        """Tell the controller gate-edge is alive."""
        self.send({"v": 1, "type": "heartbeat", "sender": "gate-edge"})

    def status(self) -> dict[str, Any]:
        """The lane snapshot."""
        answer = self.request({"v": 1, "type": "status"})
        status: dict[str, Any] = answer["status"]
        return status

    def next_event(
        self,
        predicate: Callable[[dict[str, Any]], bool] = lambda _e: True,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """The next event matching ``predicate`` (others are discarded)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching event")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                raise TimeoutError("no matching event") from None
            if predicate(event):
                return event

    def close(self) -> None:
        """Close the connection and wait for the reader."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._reader.join(timeout=2)

    def __enter__(self) -> ControllerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> None:
        buf = b""
        try:
            while True:
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._dispatch(json.loads(line))
        except (OSError, ValueError):
            pass
        finally:
            self.closed.set()

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "event":
            self.events.put(msg)
            return
        with self._waiting_lock:
            box = self._waiting.get(msg.get("id") or "")
        if box is not None:
            box.put(msg)
        else:
            self.errors.put(msg)
