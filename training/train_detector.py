"""Train the plate / container-number detector with Ultralytics, fully offline, and export ONNX.

    python -m training.train_detector --epochs 25 --imgsz 320 --out /tmp/gate-train

Ultralytics would otherwise reach the internet for a font, AMP check weights, the hub and pip
auto-installs (DESIGN-NOTES §12): `offline_environment()` sets the switches and a private config
dir with a local font *before* ultralytics is imported. The model starts from a yaml, never from
a `.pt` name (which it would download).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.dataset import CLASS_NAMES, build

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "edge" / "models"


def _local_font() -> Path:
    candidates = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]
    try:
        import matplotlib

        candidates.insert(0, Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    except ImportError:
        pass
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError("no DejaVuSans.ttf (install matplotlib or fonts-dejavu-core)")


def offline_environment(config_dir: Path) -> None:
    """Make Ultralytics never download: call before `import ultralytics`."""
    ul = config_dir / "Ultralytics"
    ul.mkdir(parents=True, exist_ok=True)
    font = _local_font()
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (ul / name).exists():
            shutil.copyfile(font, ul / name)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_VERBOSE", "false")


def train(data_yaml: Path, out: Path, *, epochs: int, imgsz: int, batch: int,
          model_yaml: str = "yolo11n.yaml", workers: int = 0) -> tuple[Path, dict[str, Any]]:
    """Train, validate and export; returns the ONNX path and validation metrics."""
    offline_environment(out / "yolo-config")
    from ultralytics import YOLO

    model = YOLO(model_yaml)
    t0 = time.monotonic()
    model.train(data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=batch, device="cpu",
                workers=workers, amp=False, plots=False, project=str(out), name="run",
                exist_ok=True, verbose=False, seed=0, deterministic=True, patience=100,
                mosaic=1.0, close_mosaic=max(1, epochs // 5), fliplr=0.0, val=False)
    train_s = time.monotonic() - t0
    metrics = model.val(data=str(data_yaml), imgsz=imgsz, batch=batch, device="cpu",
                        plots=False, workers=workers, verbose=False)
    onnx = Path(model.export(format="onnx", imgsz=imgsz, simplify=False, opset=17,
                             dynamic=False, half=False))
    results = {
        "map50": float(metrics.box.map50),
        "map50_95": float(metrics.box.map),
        "precision": float(metrics.box.mp),
        "recall": float(metrics.box.mr),
        "train_seconds": round(train_s, 1),
    }
    return onnx, results


def main(argv: list[str] | None = None) -> int:
    """CLI entry: build the dataset, train, export and (optionally) install into edge/models."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "gate-edge-train",
                    help="work folder (dataset links, runs); outside the repository")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--synthetic", type=int, default=300, help="synthetic training frames")
    ap.add_argument("--synthetic-val", type=int, default=60)
    ap.add_argument("--max-scenes", type=int, default=None, help="cap real training scenes")
    ap.add_argument("--model", default=str(Path(__file__).with_name("yolo11n-plates.yaml")),
                    help="model yaml (never a .pt name)")
    ap.add_argument("--install", action="store_true", help="copy the ONNX into edge/models/")
    args = ap.parse_args(argv)
    if args.model.endswith(".pt"):
        ap.error("train from a model yaml; a .pt name would make Ultralytics download weights")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    data_yaml = build(args.out / "dataset", synthetic=args.synthetic,
                      synthetic_val=args.synthetic_val, max_scenes=args.max_scenes)
    onnx, results = train(data_yaml, args.out, epochs=args.epochs, imgsz=args.imgsz,
                          batch=args.batch, model_yaml=args.model)
    meta = {
        "name": "plate_detector",
        "architecture": Path(args.model).name,
        "imgsz": args.imgsz,
        "classes": {str(k): v for k, v in CLASS_NAMES.items()},
        "epochs": args.epochs,
        "data": {"vn_scenes": "hash split, val iff sha1(name)[1] % 4 == 0",
                 "synthetic_train": args.synthetic, "synthetic_val": args.synthetic_val},
        "val_metrics": results,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m training.train_detector " + " ".join(
            sys.argv[1:] if argv is None else argv),
    }
    log.info("metrics: %s", json.dumps(results))
    if args.install:
        MODELS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx, MODELS_DIR / "plate_detector.onnx")
        (MODELS_DIR / "plate_detector.json").write_text(json.dumps(meta, indent=2) + "\n")
        log.info("installed %s (%d bytes)", MODELS_DIR / "plate_detector.onnx",
                 (MODELS_DIR / "plate_detector.onnx").stat().st_size)
    print(json.dumps({"onnx": str(onnx), **results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
