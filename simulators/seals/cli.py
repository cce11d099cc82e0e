"""``gate-sim seal-reader`` and ``gate-sim barcode-scanner``: simulated readers on a pty.

The first line on stdout is the port path to put in gate-edge's config (``port:``). Commands
(see ``simulators.seals.control``) come from stdin and, with ``--control``, a Unix socket.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import typer

from simulators.seals.control import HELP, Controller, ControlSocket, Device
from simulators.seals.devices import BarcodeScannerSimulator, ESealReaderSimulator

logger = logging.getLogger(__name__)

_LINK_HELP = ("stable port path (a symlink to the current pty, re-pointed on replug, like a udev "
              "name); default: a fresh temporary path")
_CONTROL_HELP = "also accept commands on this Unix socket (for scenario runners)"


def seal_reader(
    link: Path | None = typer.Option(None, "--link", help=_LINK_HELP),
    control: Path | None = typer.Option(None, "--control", help=_CONTROL_HELP),
    reader_id: str = typer.Option("R1", "--reader-id", help="the rdr field the reader sends"),
    manufacturer: str = typer.Option("ACME", "--mfr", help="the mfr field of the seals"),
    seed: int | None = typer.Option(None, help="random seed for noise and truncation"),
) -> None:
    """Simulate an RFID e-seal reader (STX payload ETX CRC16) on a pseudo-terminal.

    Example: gate-sim seal-reader --link /tmp/seal-1, then type: read ABCD1234 T bat=40
    """
    _serve(ESealReaderSimulator(link, reader_id=reader_id, manufacturer=manufacturer or None, seed=seed),
           control)


def barcode_scanner(
    link: Path | None = typer.Option(None, "--link", help=_LINK_HELP),
    control: Path | None = typer.Option(None, "--control", help=_CONTROL_HELP),
    prefix: str = typer.Option("", help="characters the scanner adds before each code"),
    suffix: str = typer.Option("", help="characters the scanner adds after each code"),
    seed: int | None = typer.Option(None, help="random seed for noise"),
) -> None:
    """Simulate a bolt-seal barcode scanner (ASCII lines, CR LF) on a pseudo-terminal.

    Example: gate-sim barcode-scanner --prefix ']C0', then type: read EU1234567
    """
    _serve(BarcodeScannerSimulator(link, prefix=prefix, suffix=suffix, seed=seed), control)


def _serve(device: Device, control: Path | None) -> None:
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    controller = Controller(device)
    server: ControlSocket | None = None
    device.start()
    try:
        if control is not None:
            server = ControlSocket(control, controller).start()
        print(device.path, flush=True)
        print(f"pty {device.port.pty_name}; commands on stdin"
              + (f" and {control}" if control else "") + "\n" + HELP, file=sys.stderr, flush=True)
        reader = threading.Thread(target=_stdin_loop, args=(controller, stop, server is None),
                                  daemon=True)
        reader.start()
        while not stop.wait(0.2):
            pass
    finally:
        if server is not None:
            server.close()
        device.close()


def _stdin_loop(controller: Controller, stop: threading.Event, stop_at_eof: bool) -> None:
    """Commands from stdin; at EOF the simulator ends unless a control socket keeps it useful."""
    for line in sys.stdin:
        answer = controller.execute(line)
        print(answer, flush=True)
        if answer == "ok bye":
            stop.set()
            return
    if stop_at_eof:
        stop.set()
