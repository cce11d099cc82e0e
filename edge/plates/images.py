"""Loading still images with a clear reason when a file is not a usable image.

OpenCV decodes a truncated JPEG without complaint (libjpeg only prints "Premature end of JPEG
file" and fills the rest grey), which would make a half image look like a bad read; the end
markers are checked here so the error names the real problem.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class ImageError(ValueError):
    """The file is not a usable image; the message says why."""


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode bytes to a BGR array or raise ImageError naming the problem."""
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        raise ImageError(f"{name}: truncated JPEG (no end-of-image marker)")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-32:]:
        raise ImageError(f"{name}: truncated PNG (no IEND chunk)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(f"{name}: not a decodable image (corrupt or unsupported format)")
    if img.size == 0 or min(img.shape[:2]) < 2:
        raise ImageError(f"{name}: image has zero size")
    return img


def load_image(path: Path) -> np.ndarray:
    """Read and decode an image file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return decode_image(data, str(path))


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given and the images inside given folders (sorted, not recursive)."""
    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out
