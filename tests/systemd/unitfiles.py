"""Reading systemd unit files the way systemd does, shared by the tests of systemd/."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
UNITS = ["gate-edge.service", "gate-controller@.service", "gate-sim@.service"]
VENV_BIN = "/opt/gate-edge/.venv/bin/"
EXAMPLE_CONFIG = REPO / "config" / "gate-edge.example.yaml"

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> Unit:
    """Sections -> (key, value) in file order; keys may repeat, as in systemd.syntax(7)."""
    sections: Unit = {}
    current: list[tuple[str, str]] | None = None
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        line, logical = logical + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def unit(name: str) -> Unit:
    return parse_unit((SYSTEMD / name).read_text(encoding="utf-8"))


def values(u: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in u.get(section, []) if k == key]


def single(u: Unit, section: str, key: str) -> str:
    found = values(u, section, key)
    assert len(found) == 1, f"[{section}] {key}= given {len(found)} times"
    return found[0]


def seconds(text: str) -> float:
    """A systemd time span (90, 90s, 2min, 1min 30s) in seconds."""
    factors = {"": 1, "s": 1, "sec": 1, "ms": 0.001, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    for number, suffix in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        total += float(number) * factors[suffix]
    return total


def tool(name: str) -> str:
    """The path of one of systemd's tools, or skip the test naming the package that has it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian package "
                    f"{'udev' if name == 'udevadm' else 'systemd'})")
    return path
