"""Evidence images on disk: one JPEG per final read, named so that nothing is ever overwritten.

Crops arrive from the camera workers before the passage they belong to exists (the pre-roll),
so a file is named by day and a fresh ULID, and the read carries that name as its
``crop_ref``; the passage lists the files with their SHA-256 when it is saved, and the console
and the audit bundle check the hash before showing or exporting a file. Below
``storage.min_free_mb`` of free disk no image is written (the passage is still recorded,
with the read's text and confidence): records must never be lost to a full disk of pictures.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

from ulid import ULID

from edge.domain.model import utcnow

log = logging.getLogger(__name__)


class EvidenceStore:
    """Writes crops under ``storage.evidence_dir`` and remembers their hashes."""

    def __init__(self, root: Path, min_free_mb: int) -> None:
        self.root = root
        self.min_free_bytes = min_free_mb * 1024 * 1024
        self.hashes: dict[str, str] = {}
        self.skipped = 0
        self.low_disk = False
        self._warned_at = 0.0

    def save(self, data: bytes, kind: str) -> str | None:
        """Write one image; returns its name relative to the root, or None if not written."""
        if not self._room_for(len(data)):
            return None
        day = utcnow().strftime("%Y-%m-%d")
        name = f"{day}/{kind}-{ULID()}.jpg"
        path = self.root / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        except OSError as exc:
            self._skip(f"cannot write {path}: {exc}")
            return None
        self.hashes[name] = hashlib.sha256(data).hexdigest()
        return name

    def entries(self, names: list[str]) -> list[dict[str, str]]:
        """The passage's evidence list: file, kind and SHA-256 of each image it references."""
        out = []
        for name in dict.fromkeys(names):
            digest = self.hashes.get(name)
            if digest is None:
                continue
            out.append({"file": name, "kind": name.split("/")[-1].split("-")[0],
                        "sha256": digest})
        return out

    def forget(self, names: list[str]) -> None:
        """The passage is saved: its hashes are on record, drop them from memory."""
        for name in names:
            self.hashes.pop(name, None)

    def _room_for(self, size: int) -> bool:
        try:
            free = shutil.disk_usage(self.root if self.root.exists() else self.root.parent).free
        except OSError as exc:
            self._skip(f"cannot check free space of {self.root}: {exc}")
            return False
        low = free - size < self.min_free_bytes
        if low != self.low_disk:
            self.low_disk = low
            if low:
                log.error("only %d MB free on %s (storage.min_free_mb = %d): evidence images "
                          "are no longer saved; passages are still recorded. Free some space.",
                          free // 2**20, self.root, self.min_free_bytes // 2**20)
            else:
                log.warning("free space on %s is back above storage.min_free_mb: saving "
                            "evidence images again", self.root)
        if low:
            self.skipped += 1
        return not low

    def _skip(self, why: str) -> None:
        self.skipped += 1
        now = time.monotonic()
        if now - self._warned_at > 60:
            self._warned_at = now
            log.error("evidence image not saved (%d so far): %s", self.skipped, why)
