"""The fast detector: the trained weights exported at a smaller input and quantized to int8.

    python -m training.quantize_detector --weights RUN/weights/best.pt [--imgsz 256] [--install]

Why: on the 2-core gate box the detector was ~40 % of a frame's time. A lane camera has a
configured region of interest (`roi`), so the plate is already larger in the detector's input
than in the full frame the model was trained on; 256 px instead of 320 costs no recall on the
held-out scenes, and static int8 quantization of the convolutions (QDQ, per channel, calibrated
on dev scenes and simulator frames — never the validation quarter) halves the rest. The first
convolution and the heads' last convolutions stay float (they set the box coordinates and
class scores). Measured figures are in docs/models.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from edge.plates.detector import MODELS_DIR, letterbox
from simulators.camera.scene import random_truck, render
from training.dataset import data_root, is_val_scene

log = logging.getLogger(__name__)

FAST_MODEL = MODELS_DIR / "plate_detector_fast.onnx"


def export_onnx(weights: Path, imgsz: int, out_dir: Path) -> Path:
    """Export the Ultralytics weights to ONNX at `imgsz` (offline, as train_detector does)."""
    from training.train_detector import offline_environment

    offline_environment(out_dir / "yolo-config")
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(1)  # a shared 2-core box: the export needs no more

    local = out_dir / weights.name
    shutil.copy(weights, local)  # Ultralytics writes the ONNX beside the weights
    return Path(YOLO(str(local)).export(format="onnx", imgsz=imgsz, simplify=False))


def calibration_blobs(imgsz: int, scenes: int = 60, synthetic: int = 40) -> list[np.ndarray]:
    """Detector inputs from dev vn_scenes (never the validation quarter) and simulator frames."""
    frames: list[np.ndarray] = []
    root = data_root()
    if root is not None:
        paths = [p for p in sorted((root / "vn_scenes" / "images").glob("*.jpg"))
                 if not is_val_scene(p.name)]
        frames += [img for p in paths[:scenes] if (img := cv2.imread(str(p))) is not None]
    else:
        log.warning("../shared/data not found: calibrating on simulator frames only")
    rng = random.Random(5)
    for i in range(synthetic):  # seeds away from training's and the benchmarks'
        f = render(random_truck(rng), size=(1920, 1080), progress=rng.uniform(0.45, 1.0),
                   seed=500_000 + i)
        frames.append(f.image[270:1080, 320:1600] if i % 2 else f.image)  # ROI and full
    blobs = []
    for frame in frames:
        img, _, _ = letterbox(frame, imgsz)
        blob = img[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        blobs.append(np.ascontiguousarray(blob))
    return blobs


def quantize(src: Path, dst: Path, blobs: list[np.ndarray]) -> None:
    """Static int8 QDQ quantization of the convolutions, heads' outputs kept float."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = onnx.load(str(src))
    name = model.graph.input[0].name
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    keep_float = [convs[0]] + [n for n in convs if "/model.23/" in n
                               and ("cv2." in n or "cv3." in n) and n.endswith(".2/Conv")]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(blobs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            blob = next(self._it, None)
            return None if blob is None else {name: blob}

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, calibrate_method=CalibrationMethod.MinMax,
                    op_types_to_quantize=["Conv"], nodes_to_exclude=keep_float)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, required=True, help="best.pt of a training run")
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--out", type=Path, default=None, help="output ONNX (default: temp dir)")
    ap.add_argument("--calibration-scenes", type=int, default=60,
                    help="dev vn_scenes images to calibrate on")
    ap.add_argument("--calibration-frames", type=int, default=40,
                    help="simulator frames to calibrate on")
    ap.add_argument("--install", action="store_true", help=f"write {FAST_MODEL.name} + .json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(args.weights, args.imgsz, Path(tmp))
        dst = FAST_MODEL if args.install else (args.out or Path(tmp) / "fast.onnx")
        quantize(fp32, dst, calibration_blobs(args.imgsz, args.calibration_scenes,
                                              args.calibration_frames))
        if args.install:
            base = json.loads((MODELS_DIR / "plate_detector.json").read_text())
            meta = {**base, "name": "plate_detector_fast", "imgsz": args.imgsz,
                    "quantized": "int8 QDQ per channel, convolutions (first conv and head "
                                 "outputs float), MinMax calibration on dev scenes + simulator",
                    "quantized_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "quantize_command": "python -m training.quantize_detector --weights "
                                        f"{args.weights.name} --imgsz {args.imgsz} --install"}
            FAST_MODEL.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
        log.info("wrote %s (%.1f MB)", dst, dst.stat().st_size / 1e6)
        print(json.dumps({"onnx": str(dst), "imgsz": args.imgsz}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
