"""Processes seen through /proc, for the tests that kill a parent and watch its children."""

from __future__ import annotations

from pathlib import Path


def running(pid: int) -> bool:
    """Running (a zombie waiting for whoever adopted it counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def children(pid: int) -> set[int]:
    """The pids of ``pid``'s children, whichever of its threads started them."""
    return {int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()}
