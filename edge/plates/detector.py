"""Plate and container-number detector: the project's YOLO model on onnxruntime (no torch).

The model is trained by `training/train_detector.py` and exported by Ultralytics to ONNX with a
fixed square input; its output is (1, 4 + classes, anchors) with boxes as centre/size in input
pixels and per-class scores already passed through a sigmoid. Pre- and post-processing
(letterbox, decode, per-class NMS) are done here so the runtime needs only numpy, OpenCV and
onnxruntime.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.plates.runtime import make_session

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = MODELS_DIR / "plate_detector.onnx"
# the same weights at 256 px, int8 (training/quantize_detector.py): for a camera with a region
# of interest, where plates are larger in the detector's input than in a full frame
FAST_MODEL = MODELS_DIR / "plate_detector_fast.onnx"


@dataclass(frozen=True)
class Detection:
    """One detected object in frame pixels."""

    cls: int
    label: str
    score: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1


def letterbox(img: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping the aspect ratio and pad to `size` x `size` with grey (as in training)."""
    h, w = img.shape[:2]
    scale = min(size / h, size / w)
    nh, nw = round(h * scale), round(w * scale)
    resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    top, left = (size - nh) // 2, (size - nw) // 2
    out = np.full((size, size, 3), 114, np.uint8)
    out[top : top + nh, left : left + nw] = resized
    return out, scale, (left, top)


class PlateDetector:
    """Runs the shipped ONNX detector on BGR frames."""

    def __init__(self, model_path: Path | None = None, *, threads: int = 2,
                 conf: float = 0.25, iou: float = 0.5) -> None:
        path = Path(model_path or DEFAULT_MODEL)
        if not path.is_file():
            raise FileNotFoundError(f"detector model {path} not found (train it with "
                                    "`python -m training.train_detector --install`)")
        self._sess = make_session(path, threads)
        inp = self._sess.get_inputs()[0]
        self._input = inp.name
        self.imgsz = int(inp.shape[2]) if isinstance(inp.shape[2], int) else 320
        meta_path = path.with_suffix(".json")
        names: dict[str, str] = {}
        if meta_path.is_file():
            names = json.loads(meta_path.read_text()).get("classes", {})
        else:  # Ultralytics writes names into the ONNX metadata as a Python dict literal
            raw = self._sess.get_modelmeta().custom_metadata_map.get("names", "{}")
            names = {k.strip(" '\""): v.strip(" '\"") for k, v in
                     (item.split(":", 1) for item in raw.strip("{}").split(",") if ":" in item)}
        self.labels = {int(k): v for k, v in names.items()}
        self.conf = conf
        self.iou = iou

    def detect(self, frame: np.ndarray, roi: tuple[int, int, int, int] | None = None
               ) -> list[Detection]:
        """Detect plates (and container numbers) in a BGR frame, optionally inside `roi`."""
        if frame is None or frame.size == 0 or frame.ndim != 3:
            raise ValueError("empty or non-colour frame")
        ox, oy = 0, 0
        if roi is not None:
            x0, y0, x1, y1 = roi
            frame = frame[max(0, y0) : y1, max(0, x0) : x1]
            ox, oy = max(0, x0), max(0, y0)
            if frame.size == 0:
                raise ValueError(f"region of interest {roi} is outside the frame")
        img, scale, (left, top) = letterbox(frame, self.imgsz)
        blob = img[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        out = self._sess.run(None, {self._input: np.ascontiguousarray(blob)})[0][0]
        scores = out[4:]
        cls = scores.argmax(axis=0)
        best = scores[cls, np.arange(scores.shape[1])]
        keep = best >= self.conf
        if not keep.any():
            return []
        cx, cy, w, h = out[0][keep], out[1][keep], out[2][keep], out[3][keep]
        best, cls = best[keep], cls[keep]
        x0 = (cx - w / 2 - left) / scale
        y0 = (cy - h / 2 - top) / scale
        boxes = np.stack([x0, y0, w / scale, h / scale], axis=1)
        fh, fw = frame.shape[:2]
        dets: list[Detection] = []
        for c in np.unique(cls):
            sel = np.where(cls == c)[0]
            idx = cv2.dnn.NMSBoxes(boxes[sel].tolist(), best[sel].tolist(), self.conf, self.iou)
            for i in np.array(idx).reshape(-1):
                j = sel[int(i)]
                bx, by, bw, bh = boxes[j]
                box = (int(max(0, bx)) + ox, int(max(0, by)) + oy,
                       int(min(fw, bx + bw)) + ox, int(min(fh, by + bh)) + oy)
                dets.append(Detection(int(c), self.labels.get(int(c), str(c)),
                                      float(best[j]), box))
        dets.sort(key=lambda d: -d.score)
        return dets
