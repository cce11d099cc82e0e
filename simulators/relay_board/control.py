"""Control socket of the relay-board simulator: JSON lines over a Unix socket.

Tests in the same process use ``RelayBoardServer`` directly; the scenario runner and people at
a terminal use this socket (or ``ControlClient``). One request per line, one reply per line:

    {"cmd": "add_vehicle", "length_m": 16.5, "speed_mps": 3, "direction": "forward",
     "stops": [[1.0, 4.0]], "turn_back_after_s": null, "tailgate": false}
    {"cmd": "inject", "fault": "stuck_loop", "target": "exit_loop"}
    {"cmd": "clear", "fault": "stuck_loop"}          (no "fault": clear everything)
    {"cmd": "power", "on": false}
    {"cmd": "spray", "bytes": 32}                    (unsolicited noise on the line)
    {"cmd": "state"}

Replies are ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``; see
docs/protocols.md (Gate-controller IPC, simulator control).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any

from simulators.relay_board.server import RelayBoardServer

logger = logging.getLogger(__name__)

VEHICLE_KEYS = {"length_m", "speed_mps", "direction", "stops", "turn_back_after_s", "tailgate",
                "start_distance_m"}


def handle_command(sim: RelayBoardServer, msg: Any) -> dict[str, Any]:
    """Apply one control request; never raises for bad input, answers with the reason."""
    if not isinstance(msg, dict) or not isinstance(msg.get("cmd"), str):
        return {"ok": False, "error": "expected a JSON object with a 'cmd' string"}
    cmd = msg["cmd"]
    try:
        if cmd == "add_vehicle":
            unknown = set(msg) - VEHICLE_KEYS - {"cmd"}
            if unknown:
                return {"ok": False, "error": f"unknown keys {sorted(unknown)}"}
            kwargs = {k: v for k, v in msg.items() if k in VEHICLE_KEYS and v is not None}
            if "stops" in kwargs:
                kwargs["stops"] = [(float(p), float(d)) for p, d in kwargs["stops"]]
            return {"ok": True, "vehicle_id": sim.add_vehicle(**kwargs)}
        if cmd == "inject":
            sim.inject(str(msg.get("fault")), msg.get("target", True))
            return {"ok": True}
        if cmd == "clear":
            sim.clear(msg.get("fault"))
            return {"ok": True}
        if cmd == "power":
            if msg.get("on", True):
                sim.clear("power_loss")
            else:
                sim.inject("power_loss")
            return {"ok": True}
        if cmd == "spray":
            sim.spray(int(msg.get("bytes", 32)))
            return {"ok": True}
        if cmd == "state":
            return {"ok": True, "state": sim.snapshot()}
    except (TypeError, ValueError) as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": False, "error": f"unknown cmd {cmd!r}; use add_vehicle, inject, clear, "
                                  "power, spray or state"}


class ControlServer:
    """Serves handle_command on a Unix socket in a background thread."""

    def __init__(self, sim: RelayBoardServer, path: Path) -> None:
        self.sim = sim
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        outer = self

        class _Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for raw in self.rfile:
                    try:
                        msg = json.loads(raw)
                    except ValueError as exc:
                        reply: dict[str, Any] = {"ok": False, "error": f"bad JSON: {exc}"}
                    else:
                        reply = handle_command(outer.sim, msg)
                    self.wfile.write(json.dumps(reply).encode() + b"\n")

        self._server = socketserver.ThreadingUnixStreamServer(str(path), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="relay-board-control", daemon=True)

    def start(self) -> ControlServer:
        """Start serving; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and remove the socket file."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class ControlClient:
    """Blocking client of the control socket, for scripts in other processes."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(str(path))
        self._file = self._sock.makefile("rwb")

    def call(self, cmd: str, **kwargs: Any) -> dict[str, Any]:
        """Send one request and return the reply; raises RuntimeError on ``ok: false``."""
        self._file.write(json.dumps({"cmd": cmd, **kwargs}).encode() + b"\n")
        self._file.flush()
        reply: dict[str, Any] = json.loads(self._file.readline())
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error", "simulator refused the command"))
        return reply

    def close(self) -> None:
        """Close the connection."""
        self._file.close()
        self._sock.close()
