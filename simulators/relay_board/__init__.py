"""Simulated Modbus RTU relay/IO board guarding one lane (``gate-sim relay-board``).

``BoardModel`` is the lane physics, ``RelayBoardServer`` puts it behind a Modbus RTU slave on a
pseudo-terminal, ``ControlServer``/``ControlClient`` drive vehicles and faults from elsewhere.
"""

from simulators.relay_board.control import ControlClient, ControlServer, handle_command
from simulators.relay_board.model import FAULTS, BoardModel, Vehicle
from simulators.relay_board.server import RelayBoardServer

__all__ = ["FAULTS", "BoardModel", "ControlClient", "ControlServer", "RelayBoardServer",
           "Vehicle", "handle_command"]
