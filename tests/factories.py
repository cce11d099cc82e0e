"""Builders of realistic domain objects for tests (valid by default, override what matters)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from edge.domain.model import (
    ContainerRead,
    Manifest,
    PassageReads,
    PlateRead,
    SealRead,
)

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def manifest(**over: Any) -> Manifest:
    base: dict[str, Any] = {
        "declaration_no": "105123456780",
        "version": 1,
        "channel": "green",
        "status": "released",
        "tractor_plate": "51C-123.45",
        "trailer_plate": "51R-012.34",
        "containers": ["MSKU1234565"],
        "seals": [{"seal_id": "VNS1234567", "type": "bolt", "container": "MSKU1234565"}],
        "trader": {"tax_code": "0301234567", "name": "Cong ty TNHH Van tai Sai Gon", "aeo": False},
        "valid_from": (NOW - timedelta(days=1)).isoformat(),
        "valid_until": (NOW + timedelta(days=30)).isoformat(),
    }
    base.update(over)
    return Manifest.model_validate(base)


def reads(lane: str = "in-1", tractor: str | None = "51C12345", confidence: float = 0.97,
          trailer: str | None = "51R01234", containers: tuple[str, ...] = ("MSKU1234565",),
          seals: tuple[tuple[str, str], ...] = (("VNS1234567", "intact"),),
          **over: Any) -> PassageReads:
    data: dict[str, Any] = {
        "lane": lane,
        "tractor": [PlateRead(lane=lane, text=tractor, confidence=confidence)] if tractor else [],
        "trailer": [PlateRead(lane=lane, role="trailer", text=trailer, confidence=0.95)]
        if trailer else [],
        "containers": [ContainerRead.model_validate({"lane": lane, "text": c}) for c in containers],
        "seals": [SealRead(lane=lane, reader="bolt-1", seal_id=s, status=st) for s, st in seals],
        "at": NOW,
    }
    data.update(over)
    return PassageReads.model_validate(data)
