"""The officer console: live lanes, passages, referral queue and overrides (DESIGN-NOTES §9).

The daemon builds it with :func:`create_app`, publishes into its :class:`LaneFeed` and
implements :class:`OfficerCommands`; :func:`serve` returns a uvicorn server for its loop.
"""

from edge.console.app import create_app, serve
from edge.console.feed import (
    CommandResult,
    DeviceStatus,
    LaneFeed,
    LaneState,
    NoGateController,
    OfficerCommand,
    OfficerCommands,
)

__all__ = ["CommandResult", "DeviceStatus", "LaneFeed", "LaneState", "NoGateController",
           "OfficerCommand", "OfficerCommands", "create_app", "serve"]
