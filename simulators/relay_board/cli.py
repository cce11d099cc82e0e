"""``gate-sim relay-board``: a simulated relay board on a pty, driven over a control socket."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from simulators.relay_board.control import ControlServer
from simulators.relay_board.model import BoardModel
from simulators.relay_board.server import RelayBoardServer


def relay_board(
    slave_id: Annotated[int, typer.Option(help="Modbus unit address (1-247)")] = 1,
    baud: Annotated[int, typer.Option(help="nominal baud rate: answers are paced at it")] = 115200,
    travel_time: Annotated[float, typer.Option(help="arm travel time, seconds")] = 2.0,
    link: Annotated[Path | None, typer.Option(
        help="also create this symlink to the pty (like a udev name)")] = None,
    control: Annotated[Path | None, typer.Option(
        help="Unix socket for the control API (vehicles, faults, state)")] = None,
) -> None:
    """Run a relay board with barrier, loops and photocell; print the pty path, serve until Ctrl-C.

    Connect gate-controller to the printed pty (or --link) exactly as to a USB-RS485 adapter.
    Drive vehicles and faults through --control (see docs/protocols.md).
    """
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    model = BoardModel(travel_time_s=travel_time)
    server = RelayBoardServer(model, slave_id=slave_id, baudrate=baud, link=link).start()
    ctl = ControlServer(server, control).start() if control is not None else None
    print(json.dumps({"pty": server.pty_path, "port": server.port,
                      "control": str(control) if control else None}), flush=True)
    done.wait()
    if ctl is not None:
        ctl.stop()
    server.stop()
