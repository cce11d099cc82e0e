"""PP-OCRv4 fine-tuning (training/finetune_ppocr.py): the cut model, row labels, a tiny run.

The cut model must be PP-OCRv4 restricted to the plate charset and nothing else: before any
training its probabilities are the stock model's, renormalised over the kept characters.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import REPO

pytest.importorskip("torch", reason="needs the [train] extra")
pytest.importorskip("onnx", reason="needs the [train] extra")
pytest.importorskip("onnx2torch", reason="needs the [train] extra")


def test_two_row_labels_follow_the_stock_reading_where_the_text_is_ambiguous() -> None:
    from training.finetune_ppocr import row_labels

    assert row_labels("51F12345", 1) == ["51F12345"]
    assert row_labels("59X112345", 2) == ["59X1", "12345"]  # 1 + 5 digits: one split only
    assert row_labels("29C73804", 2) == ["29C", "73804"]  # no reading: the printed form
    # 5 digits after the series: 59-X1 / 1234 or 59-X / 112.34, the top row's read decides
    assert row_labels("54S16317", 2, np.zeros((4, 4, 3), np.uint8), lambda _: "54S1") == [
        "54S1", "6317"]
    assert row_labels("54S16317", 2, np.zeros((4, 4, 3), np.uint8), lambda _: "54-S") == [
        "54S", "16317"]
    assert row_labels("皖A12345", 2) == []  # not a VN two-row text: no label rather than a guess


def _plate_row() -> np.ndarray:
    from simulators.camera.artwork import render_vn_plate

    art = render_vn_plate("51F12345", 1, rng=random.Random(5))
    return cv2.cvtColor(art, cv2.COLOR_RGB2BGR)


@pytest.mark.train
def test_cut_model_is_ppocr_renormalised_over_the_plate_charset(tmp_path: Path) -> None:
    import onnxruntime as ort

    from edge.plates.ocr import rapidocr_rec_model, rec_batch
    from training.finetune_ppocr import PlateModel
    from training.recognizer_data import charset

    model = PlateModel(charset())
    out = tmp_path / "cut.onnx"
    model.to_onnx(out, {"test": True})
    stock = ort.InferenceSession(str(rapidocr_rec_model()), providers=["CPUExecutionProvider"])
    cut = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    full = ["blank", *stock.get_modelmeta().custom_metadata_map["character"].splitlines(), " "]
    index = {c: i for i, c in enumerate(full)}
    keep = [index[c] for c in model.chars]
    meta = cut.get_modelmeta().custom_metadata_map
    assert meta["character"].splitlines() == model.chars[1:-1] == charset()
    assert json.loads(meta["gate_edge_card"]) == {"test": True}
    for width in (160, 320, 400):  # the width stays dynamic
        x, _ = rec_batch([_plate_row()], width)
        p_full = stock.run(None, {"x": x})[0][0]
        p_cut = cut.run(None, {"x": x})[0][0]
        expect = p_full[:, keep] / p_full[:, keep].sum(-1, keepdims=True)
        assert p_cut.shape == expect.shape
        assert np.allclose(p_cut, expect, atol=1e-4), float(np.abs(p_cut - expect).max())


@pytest.mark.slow
@pytest.mark.train
def test_tiny_run_writes_a_model_the_runtime_reads(tmp_path: Path) -> None:
    from edge.plates.ocr import PLATE_REC_MODEL, PlateRecognizer

    before = PLATE_REC_MODEL.stat().st_mtime if PLATE_REC_MODEL.exists() else None
    proc = subprocess.run(
        [sys.executable, "-m", "training.finetune_ppocr", "--out", str(tmp_path),
         "--epochs", "1", "--synthetic", "24", "--real-limit", "4", "--real-copies", "1",
         "--batch", "8", "--monitor", "4", "--threads", "1", "--seed", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    onnx = tmp_path / "plate_ppocr.onnx"
    assert onnx.is_file() and onnx.stat().st_size < 10 * 1024 * 1024
    rec = PlateRecognizer(model_path=onnx, threads=1)
    assert rec.name == "ppocr" and rec.charset[0] == "blank" and "皖" in rec.charset
    res = rec.read(_plate_row())
    assert isinstance(res.text, str) and 0.0 <= res.confidence <= 1.0
    import onnxruntime as ort

    card = json.loads(ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
                      .get_modelmeta().custom_metadata_map["gate_edge_card"])
    assert card["epochs"] == 1 and card["seed"] == 2 and 0 < card["rows"]["synthetic_rows"] <= 48
    # no --install: the shipped model is untouched
    assert (PLATE_REC_MODEL.stat().st_mtime if PLATE_REC_MODEL.exists() else None) == before
