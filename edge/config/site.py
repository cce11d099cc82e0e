"""``site``: which checkpoint this gate-edge serves."""

from __future__ import annotations

from pydantic import Field

from edge.config.types import Section


class SiteConfig(Section):
    """The checkpoint; its code is part of every MQTT topic and every passage record."""

    code: str = Field(..., pattern=r"^[A-Z0-9]{2,12}$",
                      description="checkpoint code used in MQTT topics, e.g. HUUNGHI or LAOBAO")
    name: str = Field(..., min_length=1, description="human name shown in the console")
    country: str = Field("VN", pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2 country")
    timezone: str = Field("Asia/Ho_Chi_Minh",
                          description="IANA zone for display; everything is stored in UTC")
    neighbour: str | None = Field(None, pattern=r"^[A-Z]{2}$",
                                  description="country across the border (CN, LA, KH)")
