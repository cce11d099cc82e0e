"""A small real filesystem to fill: gate-edge's storage on a tmpfs of its own.

Shared by the full-disk tests and ``benchmarks/chaos.py``. Mounting needs root with
CAP_SYS_ADMIN (CI runs as root); without it ``small_disk`` raises ``DiskUnavailable`` with the
reason, which a test turns into a skip and the chaos run into a message.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


class DiskUnavailable(RuntimeError):
    """No small filesystem can be made here; the message says why."""


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` mounted at ``path``; unmounted (lazily if busy) at the end."""
    if os.geteuid() != 0:
        raise DiskUnavailable(f"mounting a tmpfs to fill needs root (CAP_SYS_ADMIN); running "
                              f"as uid {os.geteuid()}")
    mount = shutil.which("mount")
    if mount is None:
        raise DiskUnavailable("no mount(8) on this machine: cannot make a small filesystem")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755",
                           "gate-edge-test", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        raise DiskUnavailable(f"cannot mount a tmpfs (needs root with CAP_SYS_ADMIN, e.g. not "
                              f"in an unprivileged container): {done.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(disk: Path, leave_bytes: int) -> Path:
    """A filler file that leaves about ``leave_bytes`` free on ``disk`` (0: none at all)."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with filler.open("ab") as fh:
        try:
            while (free := shutil.disk_usage(disk).free) > leave_bytes:
                fh.write(chunk[:max(4096, min(len(chunk), free - leave_bytes))])
                fh.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


def free_mb(disk: Path) -> float:
    return shutil.disk_usage(disk).free / 2**20


def truncate_wal(records: Path) -> None:
    """Give the WAL file's blocks back to the filesystem, so the next commit must grow it.

    SQLite reuses its WAL file from the start after a checkpoint; without this a commit on a
    full disk may still fit into blocks the WAL already holds, and nothing would fail.
    """
    with sqlite3.connect(records, timeout=10) as db:
        for _ in range(50):
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.1)
    raise RuntimeError("gate-edge kept records.db busy; the WAL could not be truncated")
