"""gate-edge's own line recognizer (edge/models/plate_recognizer.onnx) and the recognizer modes."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config.cameras import ReaderConfig
from edge.plates.ensemble import DEFAULT_MODE, DISAGREE_CAP, CombinedRecognizer, combine
from edge.plates.linerec import OWN_MODEL, LineModelCard
from edge.plates.ocr import OcrResult, PlateRecognizer
from simulators.camera.artwork import cjk_font_path, render_cn_plate, render_vn_plate

needs_model = pytest.mark.skipif(not OWN_MODEL.is_file(), reason="own recognizer not shipped")


def bgr(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def own() -> PlateRecognizer:
    if not OWN_MODEL.is_file():
        pytest.skip("own recognizer not shipped")
    return PlateRecognizer(model_path=OWN_MODEL, threads=1)


def test_config_default_is_the_readers_default() -> None:
    assert ReaderConfig().recognizer == DEFAULT_MODE


@needs_model
def test_card_gives_charset_and_input_size() -> None:
    card = LineModelCard.load(OWN_MODEL.with_suffix(".json"))
    assert card.charset[0] == "blank"
    assert set("0123456789ABCDEFGHKLMNPRSTUVXYZ皖京") <= set(card.charset)
    assert (card.height, card.width) == (32, 192)
    assert OWN_MODEL.stat().st_size < 8 * 1024 * 1024


def test_malformed_card_is_an_error_naming_the_file(tmp_path: Path) -> None:
    card = tmp_path / "x.json"
    card.write_text('{"input": {}}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"x\.json"):
        LineModelCard.load(card)


@pytest.mark.parametrize(("text", "rows", "grammar"), [
    ("51F12345", 1, "VN-1row"),
    ("29C73804", 2, "VN-2row"),
    ("59X112345", 2, "VN-2row"),
    ("51R01234", 2, "VN-trailer"),
    ("29R04567", 2, "VN-trailer"),
])
def test_own_model_reads_drawn_vn_plates(own: PlateRecognizer, text: str, rows: int,
                                         grammar: str) -> None:
    res = own.read(bgr(render_vn_plate(text, rows, rng=random.Random(1))))
    assert (res.text, res.grammar, res.rows) == (text, grammar, rows)
    assert res.confidence > 0.5


def test_own_model_reads_drawn_cn_plate(own: PlateRecognizer) -> None:
    if cjk_font_path() is None:
        pytest.skip("no CJK font to draw the province character")
    art = render_cn_plate("皖A12B45", rng=random.Random(2))
    assert art is not None
    res = own.read(bgr(art))
    assert (res.text, res.grammar) == ("皖A12B45", "CN")


def _res(text: str, conf: float, grammar: str | None = "VN-1row") -> OcrResult:
    return OcrResult(text, conf, grammar, 1, extras={"select_conf": conf})


def test_combine_agreement_keeps_ppocrs_confidence() -> None:
    assert combine(_res("51F12345", 0.7), _res("51F12345", 0.95)).confidence == 0.95
    assert combine(_res("51F12345", 0.99), _res("51F12345", 0.6)).confidence == 0.6


def test_combine_disagreement_keeps_ppocr_and_is_never_sure() -> None:
    best = combine(_res("51F12345", 0.97), _res("51F12346", 0.9))
    assert best.text == "51F12346" and best.confidence == DISAGREE_CAP
    assert combine(_res("51F12345", 0.97), _res("51F12346", 0.5)).confidence == 0.5


def test_combine_ignores_a_cn_province_only_disagreement() -> None:
    # the own model reads most provinces as 皖 (its CN training data): no information there
    best = combine(_res("皖A12B45", 0.9, "CN"), _res("苏A12B45", 0.95, "CN"))
    assert (best.text, best.confidence) == ("苏A12B45", 0.95)
    # anywhere else on a CN plate a disagreement still caps the read
    assert combine(_res("苏A12B46", 0.9, "CN"), _res("苏A12B45", 0.95, "CN")).confidence \
        == DISAGREE_CAP
    # and a VN plate's first character is a digit like the others
    assert combine(_res("61F12345", 0.9), _res("51F12345", 0.95)).confidence == DISAGREE_CAP


def test_combine_never_changes_ppocrs_text() -> None:
    assert combine(_res("51F1234X", 0.0, None), _res("51F12345", 0.5)).text == "51F12345"
    best = combine(_res("皖R288M95", 0.05, "CN"), _res("合肥城泊", 0.0, None))
    assert (best.text, best.grammar, best.confidence) == ("合肥城泊", None, 0.0)


@needs_model
def test_cascade_asks_ppocr_only_when_unsure(own: PlateRecognizer,
                                             recognizer: PlateRecognizer) -> None:
    comb = CombinedRecognizer(own, recognizer, "cascade", cascade_below=0.9)
    clear = bgr(render_vn_plate("51F12345", 1, rng=random.Random(3)))
    assert comb.read(clear).text == "51F12345"
    assert comb.stats == {"own": 1, "ppocr": 0}
    noise = np.random.default_rng(0).integers(0, 255, (60, 240, 3), dtype=np.uint8)
    comb.read(noise)
    assert comb.stats == {"own": 2, "ppocr": 1}


def test_missing_own_model_falls_back_to_ppocr(recognizer: PlateRecognizer,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        comb = CombinedRecognizer(None, recognizer, "cascade")
    assert comb.mode == "ppocr" and "plate_recognizer.onnx" in caplog.text
    with pytest.raises(ValueError, match="recognizer must be"):
        CombinedRecognizer(None, recognizer, "best")
