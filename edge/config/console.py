"""``console``: the officer console (FastAPI) served by the daemon."""

from __future__ import annotations

from pydantic import Field

from edge.config.types import Section


class ConsoleConfig(Section):
    """Where the officer console listens."""

    enabled: bool = Field(True, description="serve the officer console")
    host: str = Field("127.0.0.1", description="listen address; 0.0.0.0 for the officers' LAN")
    port: int = Field(8080, ge=1, le=65535, description="listen port")
