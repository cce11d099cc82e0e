"""Synthetic pre-cleared declarations for the central simulator and the benchmarks.

Every generated record passes gate-edge's own validation (ISO 6346 check digits, VN plate
layout, 12-digit declaration numbers), so a benchmark measures the real apply path.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.domain.iso6346 import check_digit

_OWNERS = ("MSK", "TGH", "CSQ", "OOL", "EGH", "HLX", "CMA", "ONE")
_SERIES = "ABCDEFGHKLMNPSTUVXYZ"


def container_number(rng: random.Random) -> str:
    """A valid ISO 6346 freight container number."""
    body = rng.choice(_OWNERS) + "U" + f"{rng.randrange(1_000_000):06d}"
    return body + str(check_digit(body))


def manifest(i: int, rng: random.Random, *, version: int = 1) -> dict[str, Any]:
    """One released green-channel declaration with a tractor, a trailer, a container and a seal."""
    province = rng.randrange(11, 99)
    plate = f"{province}C-{rng.randrange(100, 999)}.{rng.randrange(10, 99)}"
    trailer = f"{province}R-{rng.randrange(100, 999)}.{rng.randrange(10, 99)}"
    container = container_number(rng)
    return {
        "declaration_no": f"{300_000_000_000 + i:012d}", "version": version,
        "channel": rng.choice(("green", "green", "yellow")), "status": "released",
        "tractor_plate": plate, "trailer_plate": trailer, "containers": [container],
        "seals": [{"seal_id": f"VNS{rng.randrange(10**7):07d}", "type": "bolt",
                   "container": container}],
        "trader": {"tax_code": f"{rng.randrange(10**9, 10**10):010d}",
                   "name": f"Cong ty TNHH Van tai {rng.choice(_SERIES)}{i}", "aeo": rng.random() < 0.2},
        "valid_from": "2026-01-01T00:00:00+07:00", "valid_until": "2027-12-31T23:59:59+07:00",
    }


def generate(n: int, seed: int = 7, start: int = 0) -> list[dict[str, Any]]:
    """``n`` distinct declarations, reproducible from ``seed``."""
    rng = random.Random(seed)
    return [manifest(start + i, rng) for i in range(n)]


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines file, skipping blank lines and '#' comments."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip() and not line.lstrip().startswith("#"):
                yield json.loads(line)
