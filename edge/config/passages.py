"""``passages``: how long a lane waits for reads before it decides (edge/lanes/assembly.py).

The defaults suit trucks that stop at the barrier: cameras catch the plate while the truck rolls
in (the pre-roll keeps those reads), the lane decides as soon as the tractor plate is final and
nothing new arrived for ``settle``, and never waits longer than ``deadline``.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from edge.config.types import Duration, Section


class PassageConfig(Section):
    """Timing of passage assembly, shared by every lane."""

    pre_roll: Duration = Field(
        timedelta(seconds=8),
        description="reads this long before the entry loop triggered still belong to the truck")
    settle: Duration = Field(
        timedelta(milliseconds=100),
        description="decide once the tractor plate is final and no read came for this long "
                    "(one reader's burst of tags, or two cameras' reads of one truck, arrive "
                    "within a few tens of ms; a later read is still recorded with the passage)")
    trailer_wait: Duration = Field(
        timedelta(seconds=3),
        description="on lanes with a rear camera, wait this long for the trailer plate")
    deadline: Duration = Field(
        timedelta(seconds=6),
        description="decide with whatever was read this long after the loop triggered; "
                    "missing reads become reasons such as PLATE_NOT_READ (never an open)")
    drain_timeout: Duration = Field(
        timedelta(seconds=10),
        description="on shutdown, wait this long for a passage in progress to be decided and "
                    "for the outbox to drain before stopping")

    @model_validator(mode="after")
    def _order(self) -> PassageConfig:
        if self.settle >= self.deadline:
            raise ValueError("settle must be shorter than deadline")
        if self.trailer_wait > self.deadline:
            raise ValueError("trailer_wait must not exceed deadline")
        return self
