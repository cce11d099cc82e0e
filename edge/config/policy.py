"""``policy``: when the gate may open by itself, and when it must call an officer."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from edge.config.types import Duration, Section


class PolicyConfig(Section):
    """The rules of DESIGN-NOTES §4 that a customs post may tune."""

    auto_open_channels: list[Literal["green", "yellow", "red"]] = Field(
        default_factory=lambda: ["green", "yellow"],  # type: ignore[arg-type]
        description="channels whose released declarations may open the arm automatically; "
                    "others are referred (CHANNEL_REVIEW)")
    max_cache_age: Duration = Field(
        timedelta(hours=6), gt=timedelta(0), le=timedelta(days=30),
        description="if the newest signed batch is older than this, refer everything (CACHE_STALE)")
    min_plate_confidence: float = Field(
        0.80, ge=0, le=1, description="below this voted confidence a plate read is LOW_CONFIDENCE")
    require_trailer_read: bool = Field(
        True, description="refer when a declared trailer plate was not read (TRAILER_NOT_READ)")
    require_container_read: bool = Field(
        True, description="refer when a declared container was not read (CONTAINER_MISSING)")
    require_seal_read: bool = Field(
        True, description="refer when a declared seal was not read (SEAL_MISSING)")
    allow_folded_plate_match: bool = Field(
        True, description="accept OCR confusions (0/O, 8/B...) where the grammar proves them")
    hotlist_default_action: Literal["hold", "refer"] = Field(
        "hold", description="action for hotlist entries that do not name one")
