"""Plate OCR with two recognizers: gate-edge's own line model and PP-OCRv4.

The own model (`edge/plates/linerec.py`) is small and was trained on plates only; PP-OCRv4 is
large and general. `ReaderConfig.recognizer` chooses how they are used:

- `ppocr`: PP-OCRv4 alone (the reader before the own model existed);
- `own`: the own model alone;
- `cascade`: the own model first; PP-OCRv4 reads the crop only when the own read fits no
  grammar or is below `cascade_below`. Where both read, PP-OCRv4's text is kept; if the own
  model read another text, its confidence is capped below the policy threshold: two
  recognizers that disagree on a plate are not a sure read;
- `vote`: both always read; same agreement rule (for measuring, and for sites where accuracy
  matters more than CPU).
The measured figures for each are in docs/plate-reading.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np

from edge.plates.ocr import OcrResult, PlateRecognizer, selection

log = logging.getLogger(__name__)

MODES = ("ppocr", "own", "cascade", "vote")
DEFAULT_MODE = "vote"

# a disagreement between the recognizers keeps its read below the policy threshold
# (edge/config/policy.py: 0.80) so an officer looks at it
DISAGREE_CAP = 0.79


class CombinedRecognizer:
    """Drop-in for `PlateRecognizer.read` that combines the own model and PP-OCRv4 by `mode`."""

    def __init__(self, own: PlateRecognizer | None, ppocr: PlateRecognizer, mode: str,
                 cascade_below: float = 0.9) -> None:
        if mode not in MODES:
            raise ValueError(f"recognizer must be one of {', '.join(MODES)}, not {mode!r}")
        if mode != "ppocr" and own is None:
            # a missing model file is a packaging fault: read with PP-OCRv4 rather than not
            # at all, and say so
            log.error("recognizer %r needs edge/models/plate_recognizer.onnx and its .json "
                      "card, which are missing: reading with PP-OCRv4 alone", mode)
            mode = "ppocr"
        self.own, self.ppocr, self.mode = own, ppocr, mode
        self.cascade_below = cascade_below
        self.grammars = ppocr.grammars
        self.retry_below = ppocr.retry_below
        self.stats = {"own": 0, "ppocr": 0}

    @property
    def first(self) -> PlateRecognizer:
        """The recognizer that reads every crop (the latency benchmark times its network)."""
        return self.ppocr if self.mode == "ppocr" or self.own is None else self.own

    def read(self, crop: np.ndarray, rows: int | None = None, *, thorough: bool = True
             ) -> OcrResult:
        """Read a plate crop (BGR) the configured way; see the module doc."""
        if self.mode == "ppocr" or self.own is None:
            self.stats["ppocr"] += 1
            return self.ppocr.read(crop, rows, thorough=thorough)
        t0 = time.perf_counter()
        own = self.own.read(crop, rows, thorough=thorough)
        self.stats["own"] += 1
        if self.mode == "own":
            return own
        if self.mode == "cascade" and own.grammar is not None \
                and selection(own) >= self.cascade_below:
            return own
        pp = self.ppocr.read(crop, rows, thorough=thorough)
        self.stats["ppocr"] += 1
        best = combine(own, pp)
        extras = {**best.extras, "own_conf": own.confidence, "ppocr_conf": pp.confidence,
                  "net_ms": own.extras.get("net_ms", 0.0) + pp.extras.get("net_ms", 0.0)}
        return replace(best, ms=(time.perf_counter() - t0) * 1000, extras=extras)


def combine(own: OcrResult, pp: OcrResult) -> OcrResult:
    """One read from two recognizers' reads of the same crop: PP-OCRv4's text, always.

    The own model only ever lowers the confidence: where it reads another text, PP-OCRv4's
    read is capped below the policy threshold (an officer looks). Letting the own model's text
    win a disagreement, or a grammatical own read beat a PP-OCRv4 read that fits no grammar,
    lost exact matches or invented plates on crops without one (docs/plate-reading.md).
    Agreement keeps PP-OCRv4's confidence: the own model's is less calibrated (it was sure, at
    1.0, of a read that dropped a digit), and taking the higher of the two made one more wrong
    validation read sure (a cut-off `7` both read as `2`).
    """
    if own.text == pp.text or _province_only(own, pp):
        return pp
    cap = min(pp.confidence, DISAGREE_CAP)
    return replace(pp, confidence=cap,
                   candidates=tuple(replace(c, confidence=min(c.confidence, cap))
                                    for c in pp.candidates))


def _province_only(own: OcrResult, pp: OcrResult) -> bool:
    """The two differ only in a Chinese plate's province character.

    The own model saw almost only one province (259 of its 271 real CN crops are 皖) and reads
    other provinces as it: its disagreement there carries no information, and capping on it
    would send one Chinese truck in eight to an officer. The province is also not what tells
    two trucks apart in a manifest (the letter and serial after it are).
    """
    return (pp.grammar == "CN" and len(own.text) == len(pp.text) > 1
            and own.text[1:] == pp.text[1:] and own.text[:1] != pp.text[:1])
