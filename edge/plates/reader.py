"""Frame to texts: detector boxes, crops, plate OCR and ISO 6346 container-number reading.

One `PlateReader` lives in each camera worker process (onnxruntime sessions are not shared
across processes). Container numbers use the same recognizer with an ISO 6346 layout (owner
code, category U/J/Z, six serial digits, check digit), then the foundation's check-digit
repair: a read that fails the check digit is kept only if exactly one repair passes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.domain import iso6346
from edge.domain.plates import PlateGrammar, default_grammars
from edge.plates.detector import FAST_MODEL, Detection, PlateDetector
from edge.plates.ensemble import DEFAULT_MODE, CombinedRecognizer
from edge.plates.linerec import OWN_MODEL
from edge.plates.ocr import OcrResult, PlateRecognizer, cap_changed, selection

log = logging.getLogger(__name__)

ISO6346_GRAMMAR = PlateGrammar(
    "ISO6346", "", ("@@@U999999-9", "@@@J999999-9", "@@@Z999999-9"),
    letters="ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    description="ISO 6346 freight container number: owner code, category, serial, check digit",
)


@dataclass(frozen=True)
class ContainerOcr:
    """A container-number read after the check-digit test (and repair, where one fits)."""

    text: str
    confidence: float
    check_digit_ok: bool
    repaired_from: str | None
    raw: str


@dataclass(frozen=True)
class FrameRead:
    """One object read in one frame."""

    kind: str  # "plate" or "container_number"
    box: tuple[int, int, int, int]
    det_score: float
    plate: OcrResult | None = None
    container: ContainerOcr | None = None
    crop: np.ndarray | None = None
    skipped: bool = False  # not read: the caller said this vehicle's text is already settled


def crop_box(frame: np.ndarray, box: Sequence[int], pad: float = 0.08) -> np.ndarray:
    """The box with a margin (detector boxes can clip the plate border), clipped to the frame."""
    x0, y0, x1, y1 = box
    h, w = frame.shape[:2]
    px, py = int((x1 - x0) * pad), int((y1 - y0) * pad)
    return frame[max(0, y0 - py) : min(h, y1 + py), max(0, x0 - px) : min(w, x1 + px)]


class PlateReader:
    """Detector + recognizers for one camera."""

    def __init__(self, *, grammars: Sequence[PlateGrammar] | None = None,
                 detector_model: Path | None = None, detector_confidence: float = 0.25,
                 threads: int = 2, with_detector: bool = True,
                 fast_detector: str = "roi", recognizer: str = DEFAULT_MODE,
                 cascade_below: float = 0.9) -> None:
        """Load the recognizers and the detector(s).

        `fast_detector`: "roi" uses the 256 px int8 detector on a region of interest and the
        standard one on full frames; "always" / "never" force one. An explicit
        `detector_model` is used for everything. `recognizer`: ppocr, own, cascade or vote
        (`edge.plates.ensemble`).
        """
        if fast_detector not in ("roi", "always", "never"):
            raise ValueError(f"fast_detector must be roi, always or never, not {fast_detector!r}")
        self.grammars = list(grammars) if grammars is not None else default_grammars()
        ppocr = PlateRecognizer(self.grammars, threads=threads)
        own = (PlateRecognizer(self.grammars, threads=threads, model_path=OWN_MODEL)
               if recognizer != "ppocr" and OWN_MODEL.is_file() else None)
        self.recognizer = CombinedRecognizer(own, ppocr, recognizer, cascade_below)
        self.containers = PlateRecognizer([ISO6346_GRAMMAR], threads=threads,
                                          free_text_margin=40.0)
        self.detector = (PlateDetector(detector_model, threads=threads,
                                       conf=detector_confidence) if with_detector else None)
        self._fast_mode = "never" if detector_model is not None else fast_detector
        self._fast: PlateDetector | None = None
        self._det_args = (threads, detector_confidence)

    def detector_for(self, roi: tuple[int, int, int, int] | None) -> PlateDetector:
        """The detector a frame (with or without a region of interest) is run through."""
        if self.detector is None:
            raise RuntimeError("this reader was built without a detector")
        use_fast = self._fast_mode == "always" or (self._fast_mode == "roi" and roi is not None)
        if not use_fast or not FAST_MODEL.is_file():
            return self.detector
        if self._fast is None:  # loaded on first use: a camera without ROI never needs it
            threads, conf = self._det_args
            self._fast = PlateDetector(FAST_MODEL, threads=threads, conf=conf)
        return self._fast

    def read_container(self, crop: np.ndarray, thorough: bool = True) -> ContainerOcr:
        """Read an ISO 6346 number painted on a door; repair it only if exactly one fix fits."""
        res = self.containers.read(crop, rows=1, thorough=thorough)
        text = iso6346.normalize_container(res.text)
        if iso6346.is_valid(text):
            return ContainerOcr(text, res.confidence, True, None, res.raw)
        for cand in res.candidates[1:]:
            if iso6346.is_valid(cand.text):  # the runner-up layout path passes the check digit
                return ContainerOcr(cand.text, cand.confidence * 0.9, True, text, res.raw)
        fixed = iso6346.repair(text)
        if fixed is not None:
            return ContainerOcr(fixed, res.confidence * 0.8, True, text, res.raw)
        return ContainerOcr(text, res.confidence * 0.5, False, None, res.raw)

    def read_frame(self, frame: np.ndarray, roi: tuple[int, int, int, int] | None = None,
                   keep_crops: bool = False, thorough: bool = True,
                   skip: Callable[[Detection], bool] | None = None) -> list[FrameRead]:
        """Detect every plate and container number in a frame and read each.

        `thorough` False is the live mode: one OCR pass per crop, because the multi-frame vote
        that follows does what re-reading an unsure crop would (and a camera has 10 fps).
        `skip(detection)` True leaves that object unread (`FrameRead.skipped`): the live worker
        passes the boxes of vehicles whose text the vote has already settled, so OCR — most of
        a frame's time — runs only until a read is final.
        """
        out: list[FrameRead] = []
        for det in self.detector_for(roi).detect(frame, roi):
            if skip is not None and skip(det):
                out.append(FrameRead(det.label, det.box, det.score, skipped=True))
                continue
            out.append(self._read_detection(frame, det, keep_crops, thorough))
        return out

    def _read_detection(self, frame: np.ndarray, det: Detection, keep: bool,
                        thorough: bool) -> FrameRead:
        crop = crop_box(frame, det.box)
        if det.label == "container_number":
            return FrameRead(det.label, det.box, det.score,
                             container=self.read_container(crop, thorough),
                             crop=crop if keep else None)
        return FrameRead("plate", det.box, det.score,
                         plate=self.recognizer.read(crop, thorough=thorough),
                         crop=crop if keep else None)

    def read_crop(self, crop: np.ndarray, rows: int | None = None) -> OcrResult:
        """Read an already-cropped plate.

        A loose crop (the plate small inside a larger picture) reads badly; when the first read
        is unsure and a detector is loaded, the detector finds the plate inside the crop and the
        surer of the two readings is kept.
        """
        if crop is None or crop.size == 0:
            raise ValueError("empty crop")
        res = first = self.recognizer.read(crop, rows)
        if self.detector is None or selection(res) >= self.recognizer.retry_below:
            return res
        h, w = crop.shape[:2]
        # the detector learnt plates a few percent of a scene wide: pad the crop to 3x so a
        # plate that fills half of a loose crop looks like one it was trained on
        canvas = cv2.copyMakeBorder(crop, h, h, w, w, cv2.BORDER_CONSTANT, value=(114, 114, 114))
        for det in self.detector.detect(canvas):
            x0, y0, x1, y1 = (max(0, det.box[0] - w), max(0, det.box[1] - h),
                              min(w, det.box[2] - w), min(h, det.box[3] - h))
            if det.label != "plate" or x1 <= x0 or y1 <= y0 or (x1 - x0) * (y1 - y0) > 0.6 * w * h:
                continue
            inner = self.recognizer.read(crop_box(crop, (x0, y0, x1, y1)), rows)
            if (inner.grammar is not None, selection(inner)) > (res.grammar is not None,
                                                                selection(res)):
                res = cap_changed(first, inner)
            break
        return res

