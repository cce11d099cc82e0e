"""Evidence images: written whole with their hash, and never at the cost of the records."""

from __future__ import annotations

import hashlib
from pathlib import Path

from edge.daemon.evidence import EvidenceStore


def test_an_image_is_written_whole_with_its_hash(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "evidence", min_free_mb=10)
    name = store.save(b"\xff\xd8jpeg bytes\xff\xd9", "plate")
    assert name is not None and name.endswith(".jpg") and "/plate-" in name
    data = (tmp_path / "evidence" / name).read_bytes()
    assert data == b"\xff\xd8jpeg bytes\xff\xd9"
    [entry] = store.entries([name, name])
    assert entry == {"file": name, "kind": "plate", "sha256": hashlib.sha256(data).hexdigest()}
    assert not list((tmp_path / "evidence").rglob("*.part"))


def test_a_nearly_full_disk_stops_images_not_records(tmp_path: Path) -> None:
    """Below storage.min_free_mb no image is written; the caller records the read anyway."""
    store = EvidenceStore(tmp_path / "evidence", min_free_mb=10**9)   # a petabyte "minimum"
    assert store.save(b"jpeg", "plate") is None
    assert store.save(b"jpeg", "container") is None
    assert store.low_disk and store.skipped == 2
    assert store.entries([]) == []
    assert not (tmp_path / "evidence").exists() or not list((tmp_path / "evidence").rglob("*"))


def test_an_unwritable_directory_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "evidence"
    blocker.write_text("a file where the directory should be")
    store = EvidenceStore(blocker, min_free_mb=10)
    assert store.save(b"jpeg", "plate") is None
    assert store.skipped == 1
