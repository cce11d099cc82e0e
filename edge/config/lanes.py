"""``lanes``: the truck lanes of the checkpoint and the devices that watch each."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.config.types import Section


class LaneConfig(Section):
    """One automated lane: its cameras, seal readers and the relay board of its barrier."""

    id: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
                    description="short lane id used in topics, logs and the console (e.g. in-1)")
    name: str = Field("", description="label shown to officers, e.g. 'Import lane 1'")
    direction: Literal["inbound", "outbound"] = Field(
        ..., description="inbound (entering Vietnam) or outbound (leaving)")
    relay_board: str | None = Field(
        None, description="name of the relay board (from relay_boards) driving this lane's barrier")
    cameras: list[str] = Field(default_factory=list,
                               description="names of cameras (from cameras) watching this lane")
    seal_readers: list[str] = Field(
        default_factory=list, description="names of seal readers (from seal_readers) at this lane")
    aeo_priority: bool = Field(
        False, description="priority lane: only AEO traders pass automatically here")
    enabled: bool = Field(True, description="false takes the lane out of automatic service")
