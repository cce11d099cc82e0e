"""gate-edge's own plate-line recognizer (`edge/models/plate_recognizer.onnx`), run by onnxruntime.

A small CRNN trained here (`training/train_recognizer.py`) on plate lines only. It reads one
grey 32 x 192 line and outputs CTC frame probabilities over the charset of its JSON card, the
same (T, C) matrix PP-OCRv4 gives, so the grammar-constrained decoder (`edge.plates.ctc`)
serves both.

Two-row plates are cut where `split_rows` cuts them and the two rows are put side by side on
one line (`join_rows`), at training and at run time alike. That way the model is trained on
the plate's whole text as one label: the machine-made labels of `vn_plates` do not say where
the top row ends (`59X11234` may be `59X1 / 1234` or `59X / 112.34`), and one network run per
plate costs less than two.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.plates.rectify import join_rows, split_rows

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
OWN_MODEL = MODELS_DIR / "plate_recognizer.onnx"


@dataclass(frozen=True)
class LineModelCard:
    """What the runtime needs from the model's JSON card: input size and charset (index 0 blank)."""

    height: int
    width: int
    charset: tuple[str, ...]

    @classmethod
    def load(cls, path: Path) -> LineModelCard:
        """Read `<model>.json`; a missing or malformed card is an error naming the file."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(int(data["input"]["height"]), int(data["input"]["width"]),
                       tuple(["blank", *data["charset"]]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a recognizer card ({exc})") from exc


def line_image(plate: np.ndarray, rows: int, height: int, width: int) -> np.ndarray:
    """The model's input line (grey uint8, height x width) for a rectified plate crop (BGR).

    Two rows are split and joined side by side first; the joined line is then stretched to the
    fixed width (the network sees plates of every aspect ratio the same way it was trained).
    """
    if rows == 2:
        top, bottom = split_rows(plate)
        plate = join_rows(top, bottom, height)
    gray = cv2.cvtColor(plate, cv2.COLOR_BGR2GRAY) if plate.ndim == 3 else plate
    interp = cv2.INTER_AREA if gray.shape[1] > width else cv2.INTER_LINEAR
    return cv2.resize(gray, (width, height), interpolation=interp)


def line_batch(lines: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 1, H, W) float32 in -1..1 from grey uint8 lines (the normalisation used in training)."""
    arr = np.stack(lines).astype(np.float32)[:, None]
    return (arr / 255.0 - 0.5) / 0.5
