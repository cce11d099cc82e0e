"""Bad image files give an error naming the problem, never a crash or a half image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.plates.images import ImageError, expand_inputs, load_image


@pytest.fixture
def good_jpeg(tmp_path: Path) -> Path:
    p = tmp_path / "ok.jpg"
    cv2.imwrite(str(p), np.full((40, 120, 3), 200, np.uint8))
    return p


def test_good_image_loads(good_jpeg: Path) -> None:
    assert load_image(good_jpeg).shape == (40, 120, 3)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"this is not an image", "not a decodable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "truncated PNG"),
    ],
)
def test_bad_bytes_are_named(tmp_path: Path, content: bytes, reason: str) -> None:
    p = tmp_path / "bad.png"
    p.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        load_image(p)


def test_truncated_jpeg_is_named(tmp_path: Path, good_jpeg: Path) -> None:
    p = tmp_path / "cut.jpg"
    p.write_bytes(good_jpeg.read_bytes()[:300])
    with pytest.raises(ImageError, match="truncated JPEG"):
        load_image(p)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="cannot read"):
        load_image(tmp_path / "nope.jpg")


def test_folders_expand_to_their_images(tmp_path: Path, good_jpeg: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    assert expand_inputs([tmp_path]) == [good_jpeg]
