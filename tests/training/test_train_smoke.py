"""Training smoke test: one epoch on a handful of images, ONNX export, load by the runtime.

Runs Ultralytics in a child process so its offline switches (YOLO_OFFLINE, private config dir
with a local font) are set before it is imported, exactly as `python -m training...` does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("ultralytics", reason="needs the [train] extra")
pytest.importorskip("onnx", reason="needs the [train] extra")


@pytest.mark.train
@pytest.mark.slow
def test_one_epoch_exports_onnx_the_runtime_loads(tmp_path: Path) -> None:
    from edge.plates.detector import PlateDetector
    from simulators.camera.scene import PlateSpec, TruckView, render

    shipped = REPO / "edge" / "models" / "plate_detector.onnx"
    before = shipped.stat().st_mtime if shipped.exists() else None
    env = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    proc = subprocess.run(
        [sys.executable, "-m", "training.train_detector", "--out", str(tmp_path),
         "--epochs", "1", "--imgsz", "160", "--batch", "4", "--synthetic", "6",
         "--synthetic-val", "2", "--max-scenes", "4"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    onnx = Path(result["onnx"])
    assert onnx.is_file() and onnx.stat().st_size < 8 * 1024 * 1024
    # offline: the private config dir got the local font, nothing was fetched
    assert (tmp_path / "yolo-config" / "Ultralytics" / "Arial.ttf").is_file()
    assert "Downloading" not in proc.stderr
    det = PlateDetector(onnx, conf=0.001)
    assert det.imgsz == 160
    assert det.labels == {0: "plate", 1: "container_number"}
    frame = render(TruckView(tractor_plate=PlateSpec("51C12345")), size=(640, 360), seed=3)
    dets = det.detect(frame.image)
    assert all(0 <= d.box[0] <= d.box[2] <= 640 and 0 <= d.box[1] <= d.box[3] <= 360
               for d in dets)
    # the shipped model is untouched (no --install)
    assert (shipped.stat().st_mtime if shipped.exists() else None) == before

    # the fast detector from the same weights: smaller input, int8, loads in the runtime
    weights = next(p for p in (tmp_path / "run" / "weights" / "best.pt",
                               tmp_path / "run" / "weights" / "last.pt") if p.is_file())
    fast_out = tmp_path / "fast.onnx"
    proc = subprocess.run(
        [sys.executable, "-m", "training.quantize_detector", "--weights", str(weights),
         "--imgsz", "128", "--out", str(fast_out), "--calibration-scenes", "4",
         "--calibration-frames", "2"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["onnx"] == str(fast_out)
    assert "Downloading" not in proc.stderr
    fast = PlateDetector(fast_out, conf=0.001)
    assert fast.imgsz == 128
    assert fast.labels == {0: "plate", 1: "container_number"}
    assert all(0 <= d.box[0] <= d.box[2] <= 640 for d in fast.detect(frame.image))
