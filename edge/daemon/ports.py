"""What a lane runtime needs from the parts around it, as protocols.

The cameras and the metrics live in other processes or modules; the lane only calls these
few methods, so tests can hand it their own small objects and the lane module stays about
deciding passages.
"""

from __future__ import annotations

from typing import Any, Protocol


class Occupancy(Protocol):
    """What the lane tells a camera: boost capture while a vehicle is on the loop."""

    def set_occupied(self, occupied: bool) -> None:
        """Boost (True) or relax (False) the frame rate."""


class LaneMetrics(Protocol):
    """The part of ``edge.metrics.GateMetrics`` a lane reports to."""

    def observe_lane_latency(self, lane: str, seconds: float) -> None:
        """Loop trigger to barrier-open coil."""

    def observe_decision(self, lane: str, outcome: str, reasons: Any,
                         seconds: float | None = None) -> None:
        """One decision with its reasons."""

    def count_read(self, lane: str, kind: str, device: str) -> None:
        """One read from a camera or seal reader."""
