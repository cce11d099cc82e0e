"""The command language of the simulated seal readers, for people, scripts and scenarios.

One command per line, one answer line per command (``ok ...`` or ``error: ...``). The same
interpreter serves stdin and an optional Unix control socket, so a scenario runner that started
the simulator as a process can drive it, and a person can type at it.

    read SEAL [I|O|T] [key=value ...]   e-seal: one frame (bat=, mfr=, rdr=, ts=, any extra key)
    read CODE...                        barcode: one scan (the rest of the line is the code)
    noise N                             N bytes of line noise
    truncate [SEAL]                     a frame / line cut off part-way
    badcrc [SEAL]                       a frame with a wrong CRC (e-seal only)
    burst N [SEAL]                      N reads back to back
    raw HEX                             arbitrary bytes, e.g. raw 02 41 03
    unplug | replug                     pull / reinsert the USB cable
    status                              port, pty and counters
    help | quit
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from pathlib import Path

from simulators.seals.devices import BarcodeScannerSimulator, ESealReaderSimulator

logger = logging.getLogger(__name__)

Device = ESealReaderSimulator | BarcodeScannerSimulator
HELP = __doc__.split("\n\n", 2)[2].rstrip() if __doc__ else ""


class CommandError(ValueError):
    """A command line that cannot be carried out; the message says what to type instead."""


class Controller:
    """Executes command lines against one simulated device (thread-safe)."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self._lock = threading.Lock()

    def execute(self, line: str) -> str:
        """Run one command; returns the answer line, never raises for bad input."""
        words = line.split()
        if not words or words[0].startswith("#"):
            return "ok"
        try:
            with self._lock:
                return self._run(words[0].lower(), words[1:])
        except CommandError as exc:
            return f"error: {exc}"

    def _run(self, cmd: str, args: list[str]) -> str:
        dev = self.device
        if cmd == "read":
            if not args:
                raise CommandError("read needs a seal id, e.g. 'read ABCD1234 I'")
            if isinstance(dev, ESealReaderSimulator):
                return _sent(self._eseal_read(dev, args))
            return _sent(dev.read(" ".join(args)))
        if cmd == "noise":
            return _sent(dev.noise(_count(args, "noise N")))
        if cmd == "truncate":
            return _sent(dev.truncate(*args[:1]))
        if cmd == "badcrc":
            if not isinstance(dev, ESealReaderSimulator):
                raise CommandError("a barcode scanner has no CRC; use 'noise N' or 'truncate'")
            return _sent(dev.badcrc(*args[:1]))
        if cmd == "burst":
            n = _count(args, "burst N [SEAL]")
            return _sent(dev.burst(n, *args[1:2]))
        if cmd == "raw":
            try:
                data = bytes.fromhex(" ".join(args))
            except ValueError:
                raise CommandError("raw takes hex bytes, e.g. 'raw 02 41 03'") from None
            return _sent(dev.raw(data))
        if cmd == "unplug":
            dev.unplug()
            return "ok unplugged"
        if cmd == "replug":
            dev.replug()
            return f"ok plugged {dev.port.pty_name}"
        if cmd == "status":
            p = dev.port
            return (f"ok port={p.path} pty={p.pty_name} plugged={p.plugged} reads={dev.sent_reads} "
                    f"bytes_sent={p.bytes_sent} bytes_dropped={p.bytes_dropped}")
        if cmd == "help":
            return "ok " + " | ".join(x.strip().split("  ")[0] for x in HELP.splitlines())
        if cmd == "quit":
            return "ok bye"
        raise CommandError(f"unknown command {cmd!r}; type 'help'")

    @staticmethod
    def _eseal_read(dev: ESealReaderSimulator, args: list[str]) -> bytes:
        seal, status = args[0], "I"
        fields: dict[str, str | int | None] = {}
        for arg in args[1:]:
            key, sep, value = arg.partition("=")
            if sep:
                fields[key] = value
            else:
                status = arg
        try:
            return dev.read(seal, status, **fields)
        except (UnicodeEncodeError, TypeError) as exc:
            raise CommandError(f"cannot encode that read: {exc}") from None


def _count(args: list[str], usage: str) -> int:
    if not args or not args[0].isdigit() or not 0 < int(args[0]) <= 100_000:
        raise CommandError(f"usage: {usage} (N from 1 to 100000)")
    return int(args[0])


def _sent(data: bytes) -> str:
    return f"ok sent {len(data)} bytes"


class ControlSocket:
    """A Unix stream socket that feeds command lines to a :class:`Controller`."""

    def __init__(self, path: str | Path, controller: Controller) -> None:
        self.path = Path(path)
        self.controller = controller
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        self._sock.listen(4)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="seal-sim-control", daemon=True)

    def start(self) -> ControlSocket:
        """Accept connections in a background thread."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, close the socket and remove its file."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb", buffering=0) as stream:
            for raw in stream:
                answer = self.controller.execute(raw.decode("utf-8", "replace"))
                try:
                    stream.write(answer.encode() + b"\n")
                except OSError:
                    return
