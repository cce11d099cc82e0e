"""The recognizer's training script: a tiny seeded run, ONNX + card, loaded by the runtime.

Also checks the training data never holds a crop of the benchmark's evaluation split.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from tests.conftest import REPO

pytest.importorskip("torch", reason="needs the [train] extra")
pytest.importorskip("onnx", reason="needs the [train] extra")


@pytest.fixture(scope="module")
def data() -> Path:
    from training.dataset import data_root

    root = data_root()
    if root is None:
        pytest.skip("../shared/data not present")
    return root


def test_one_edit() -> None:
    from training.recognizer_data import one_edit

    assert one_edit("51F12345", "51F12345")
    assert one_edit("51F12345", "51F12346")
    assert one_edit("51F12345", "51F1234")
    assert one_edit("59X112345", "59X12345")
    assert not one_edit("51F12345", "51F12366")
    assert not one_edit("51F12345", "51F123")


def test_training_rows_keep_the_evaluation_split_out(data: Path) -> None:
    from training.dataset import is_val_cn
    from training.recognizer_data import cn_training_rows, one_edit, vn_training_rows

    with (data / "vn_plates" / "verified.csv").open(encoding="utf-8") as fh:
        verified = list(csv.DictReader(fh))
    texts = {r["text_verified"] for r in verified} | {r["text_pseudo"] for r in verified}
    vn = vn_training_rows(data)
    assert vn, "no VN training crops at all"
    assert not {r["file"] for r in vn} & {r["file"] for r in verified}
    assert not [r["text"] for r in vn if any(one_edit(r["text"], t) for t in texts)]
    cn = cn_training_rows(data)
    assert cn and not [r for r in cn if is_val_cn(r["file"])]


@pytest.mark.slow
@pytest.mark.train
def test_tiny_run_writes_onnx_and_card_the_runtime_reads(tmp_path: Path, data: Path) -> None:
    from edge.plates.ocr import PlateRecognizer
    from simulators.camera.artwork import render_vn_plate

    shipped = REPO / "edge" / "models" / "plate_recognizer.onnx"
    before = shipped.stat().st_mtime if shipped.exists() else None
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "training.train_recognizer", "--out", str(tmp_path),
         "--epochs", "1", "--synthetic", "48", "--real-limit", "8", "--real-copies", "1",
         "--batch", "16", "--monitor", "8", "--threads", "1", "--no-eval", "--seed", "3"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    onnx = Path(result["onnx"])
    assert onnx.with_suffix(".pt").is_file()
    assert onnx.is_file() and onnx.stat().st_size < 8 * 1024 * 1024
    card = json.loads(onnx.with_suffix(".json").read_text(encoding="utf-8"))
    assert card["epochs"] == 1 and card["seed"] == 3
    assert "皖" in card["charset"] and "0" in card["charset"]
    assert card["data"]["real_lines"] == 16  # 8 VN + 8 CN crops, one copy each
    # the runtime takes charset and input size from the card beside the ONNX
    rec = PlateRecognizer(model_path=onnx, threads=1)
    assert rec.name == "own" and rec.charset[0] == "blank" and len(rec.charset) == 1 + len(
        card["charset"])
    img = cv2.cvtColor(render_vn_plate("51F12345", 2, rng=random.Random(2)), cv2.COLOR_RGB2BGR)
    res = rec.read(img)
    assert isinstance(res.text, str) and 0.0 <= res.confidence <= 1.0 and res.rows in (1, 2)
    # no --install: the shipped model is untouched
    assert (shipped.stat().st_mtime if shipped.exists() else None) == before
