"""Plate OCR: PP-OCRv4 recognition (shipped in the rapidocr-onnxruntime wheel) on rectified rows.

Only the recognition network runs (no text detection, no angle classifier: ~600 ms saved per
frame, DESIGN-NOTES §12). The ONNX file and its character table come from the installed
`rapidocr_onnxruntime` package; the session is created here so the full per-frame probability
matrix is available to the grammar-constrained decoder (`edge.plates.ctc`) — rapidocr's own
wrapper returns only the greedy string and a mean score.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache, cached_property
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from edge.domain.plates import PlateGrammar, classify, default_grammars, rank_candidates
from edge.plates.ctc import LayoutRead, compress_blanks, decode_layout, greedy
from edge.plates.linerec import MODELS_DIR, LineModelCard, line_batch, line_image
from edge.plates.rectify import join_rows, rectify, split_rows
from edge.plates.runtime import make_session

log = logging.getLogger(__name__)

REC_HEIGHT = 48
PADDLE_MIN_WIDTH = 320  # PaddleOCR pads every line to at least this width

# Characters a layout cannot contain pass their probability to the one PP-OCR mistakes them for
# on plates: series letters never use I, J, O, Q, W (Circular 58/2020), and in plate fonts an M
# with a deep middle vertex is read as W; letters among digits are the usual look-alikes.
VISUAL_CONFUSIONS: dict[str, str] = {
    "W": "M", "O": "0D", "Q": "0", "D": "0", "I": "1", "J": "1", "L": "1", "T": "1",
    "Z": "2", "S": "5", "G": "6", "B": "8", "A": "4", "U": "0",
    "0": "D", "1": "T", "2": "Z", "5": "S", "6": "G", "8": "B", "4": "A",
}


def rapidocr_rec_model() -> Path:
    """Path of the PP-OCRv4 recognition model inside the rapidocr-onnxruntime wheel."""
    base = resources.files("rapidocr_onnxruntime") / "models" / "ch_PP-OCRv4_rec_infer.onnx"
    return Path(str(base))


# PP-OCRv4 with its output layer cut to the plate charset, weights unchanged
# (training/finetune_ppocr.py --epochs 0, card in docs/models.md); same input, same decoding
PLATE_REC_MODEL = MODELS_DIR / "plate_ppocr.onnx"


def default_rec_model() -> Path:
    """The recognizer plates and container numbers are read with.

    gate-edge's plate cut of PP-OCRv4 when it is installed; the wheel's general PP-OCRv4
    otherwise (a packaging fault, said once: reads still work, slower).
    """
    if PLATE_REC_MODEL.is_file():
        return PLATE_REC_MODEL
    _warn_plate_model_missing()
    return rapidocr_rec_model()


@cache
def _warn_plate_model_missing() -> None:
    log.warning("%s is missing: reading plates with the general PP-OCRv4 from the "
                "rapidocr-onnxruntime wheel (slower; reinstall gate-edge)", PLATE_REC_MODEL)


_SESSIONS: dict[tuple[str, int], ort.InferenceSession] = {}


def shared_session(path: Path, threads: int) -> ort.InferenceSession:
    """The process's session for a model file and thread count (created on first use)."""
    key = (str(Path(path).resolve()), threads)
    if key not in _SESSIONS:
        _SESSIONS[key] = make_session(Path(path), threads)
    return _SESSIONS[key]


@dataclass(frozen=True)
class Candidate:
    """One reading of a plate: normalized text, confidence 0..1, grammar name (or None)."""

    text: str
    confidence: float
    grammar: str | None


@dataclass(frozen=True)
class OcrResult:
    """What the OCR made of one plate crop."""

    text: str
    confidence: float
    grammar: str | None
    rows: int
    char_conf: tuple[float, ...] = ()
    candidates: tuple[Candidate, ...] = ()
    raw: str = ""
    ms: float = 0.0
    extras: dict[str, float] = field(default_factory=dict)
    char_alt: tuple[float, ...] = ()  # per character: probability of the runner-up character


class PlateRecognizer:
    """PP-OCRv4 recognition plus grammar-constrained decoding of plate rows."""

    def __init__(self, grammars: Sequence[PlateGrammar] | None = None, *, threads: int = 2,
                 model_path: Path | None = None, free_text_margin: float = 12.0,
                 retry_below: float = 0.6, min_width: int | None = None,
                 join_rows: bool = False) -> None:
        self.grammars = list(grammars) if grammars is not None else default_grammars()
        # one session serves every recognizer of a process that uses the same model file
        # (plates and container numbers): one copy of the weights, one warm arena
        path = Path(model_path or default_rec_model())
        self._sess = shared_session(path, threads)
        # a model of our own carries its charset and input size in a JSON card beside it
        # (edge/plates/linerec.py); PP-OCRv4 carries its charset in the ONNX metadata
        card_min_width = PADDLE_MIN_WIDTH
        card = path.with_suffix(".json")
        self.line_card = LineModelCard.load(card) if card.is_file() else None
        if self.line_card is not None:
            self.charset = list(self.line_card.charset)
            join_rows = True  # trained on two-row plates joined into one line
        else:
            meta = self._sess.get_modelmeta().custom_metadata_map
            self.charset = ["blank", *meta["character"].splitlines(), " "]
            # gate-edge's plate cut of PP-OCRv4 says in its card how narrow a row may be fed
            card_min_width = int(json.loads(meta.get("gate_edge_card", "{}"))
                                 .get("min_width", PADDLE_MIN_WIDTH))
        self._index = {c: i for i, c in enumerate(self.charset)}
        self._input = self._sess.get_inputs()[0].name
        # how much less likely (nats) the best grammatical path may be than the free read
        # before the read is reported as "fits no grammar"
        self.free_text_margin = free_text_margin
        self.retry_below = retry_below
        # PaddleOCR pads every line to >= 320 px; plate rows are shorter and pay for the padding
        self.min_width = card_min_width if min_width is None else min_width
        self.join_rows = join_rows
        self._patterns: dict[tuple[str, ...],
                             tuple[np.ndarray, np.ndarray, str, np.ndarray]] = {}

    @cached_property
    def _layouts(self) -> list[tuple[str, tuple[tuple[str, ...], ...]]]:
        """(grammar name, row patterns) for every layout; a row pattern is one class per char."""
        out = []
        for g in self.grammars:
            for template, classes in g.layouts:
                rows, i = [], 0
                for row in template.split("/"):
                    width = sum(1 for ch in row if ch not in "-. ")
                    rows.append(tuple(classes[i : i + width]))
                    i += width
                out.append((g.name, tuple(rows)))
        return out

    @cached_property
    def _blank_idx(self) -> np.ndarray:
        """Blank plus the separators a plate shows but its normalized text drops (- . · space)."""
        return np.array([0] + [self._index[c] for c in " -.·" if c in self._index])

    def _pattern(self, pattern: tuple[str, ...]
                 ) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
        """Charset indices, mask, alphabet and confusion transfers of a row pattern (cached)."""
        cached = self._patterns.get(pattern)
        if cached is None:
            alphabet = "".join(sorted({c for cls in pattern for c in cls if c in self._index}))
            pos = {c: i for i, c in enumerate(alphabet)}
            mask = np.full((len(pattern), len(alphabet)), -1e9)
            for k, cls in enumerate(pattern):
                for ch in cls:
                    if ch in pos:
                        mask[k, pos[ch]] = 0.0
            idx = np.array([self._index[c] for c in alphabet])
            # impossible look-alikes hand their probability to a possible character:
            # (charset index of the source, alphabet position of the receiver) pairs
            pairs = []
            for src, dsts in VISUAL_CONFUSIONS.items():
                if src in pos or src not in self._index:
                    continue
                for dst in dsts:
                    if dst in pos:
                        pairs.append((self._index[src], pos[dst]))
                        break
            transfer = np.array(pairs, np.int64).reshape(-1, 2)
            cached = (idx, mask, alphabet, transfer)
            self._patterns[pattern] = cached
        return cached

    @property
    def name(self) -> str:
        """"own" for gate-edge's trained line model, "ppocr" for PP-OCRv4."""
        return "ppocr" if self.line_card is None else "own"

    def rec_batch(self, rows: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]]:
        """The recognizer's input for row images (BGR).

        PP-OCRv4: height 48, one width, zero padding. Own model: grey lines stretched to the
        card's fixed size (every frame of the output then belongs to the row).
        """
        card = self.line_card
        if card is not None:
            lines = [line_image(r, 1, card.height, card.width) for r in rows]
            return line_batch(lines), [card.width] * len(rows)
        return rec_batch(rows, self.min_width)

    def row_probs(self, rows: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Frame-by-character probabilities (T, C) of each row image (BGR), one batch."""
        batch, widths = self.rec_batch(rows)
        width = batch.shape[3]
        out = self._sess.run(None, {self._input: batch})[0]
        t_total = out.shape[1]
        # frames beyond the padded end of a row only see padding: drop them
        return [out[i, : max(1, min(t_total, math.ceil(w / width * t_total) + 1))]
                for i, w in enumerate(widths)]

    def read_rows(self, rows: Sequence[np.ndarray], plate_rows: int | None = None) -> OcrResult:
        """Read a plate given its row images (top first).

        `plate_rows` 2 with one image: the two rows were joined side by side into one line.
        """
        t0 = time.perf_counter()
        n_rows = plate_rows or len(rows)
        joined = n_rows != len(rows)
        probs = self.row_probs(rows)
        net_ms = (time.perf_counter() - t0) * 1000
        raw_parts = [greedy(p, self.charset)[0] for p in probs]
        raw = "".join(raw_parts).replace(" ", "")
        # layouts more than 2 characters longer or shorter than the free read are not decoded
        seen = [sum(1 for ch in part if ch not in " -.·") for part in raw_parts]
        blanks = [np.log(np.maximum(p[:, self._blank_idx].sum(axis=1), 1e-12)) for p in probs]
        free = 0.0
        for p, bl in zip(probs, blanks, strict=True):
            chars = np.delete(p, self._blank_idx, axis=1)
            free += float(np.maximum(bl, np.log(np.maximum(chars.max(axis=1), 1e-12))).sum())
        sure = [bl > math.log(0.999) for bl in blanks]
        decoded: dict[tuple[int, tuple[str, ...]], LayoutRead | None] = {}
        scored: dict[str, tuple[float, str, tuple[float, ...]]] = {}
        alts: dict[str, tuple[float, ...]] = {}
        for gname, patterns in self._layouts:
            if len(patterns) != n_rows:
                continue
            if joined:
                patterns = (tuple(c for pat in patterns for c in pat),)
            text, total = "", 0.0
            confs: tuple[float, ...] = ()
            alt: tuple[float, ...] = ()
            for i, pattern in enumerate(patterns):
                key = (i, pattern)
                if key not in decoded and abs(len(pattern) - seen[i]) > 2:
                    decoded[key] = None
                if key not in decoded:
                    idx, mask, alphabet, transfer = self._pattern(pattern)
                    own = probs[i][:, idx]
                    for src, dst in transfer:
                        own[:, dst] += probs[i][:, src]
                    lp = np.log(np.maximum(own, 1e-12))
                    lp_c, bl_c = compress_blanks(lp, blanks[i], sure[i])
                    decoded[key] = decode_layout(lp_c, bl_c, mask, alphabet)
                r = decoded[key]
                if r is None:
                    break
                text += r.text
                confs += r.char_conf
                alt += r.char_alt
                total += r.logp
            else:
                if text not in scored or scored[text][0] < total:
                    scored[text] = (total, gname, confs)
                    alts[text] = alt
        ms = (time.perf_counter() - t0) * 1000
        if not scored:
            return OcrResult(raw, 0.0, None, n_rows, raw=raw, ms=ms, extras={"net_ms": net_ms})
        ranked = sorted(scored.items(), key=lambda kv: -kv[1][0])
        best_text, (best_lp, _g, best_conf) = ranked[0]
        gap = free - best_lp
        conf = _confidence(best_conf, alts[best_text], gap)
        if gap > self.free_text_margin:
            return OcrResult(raw, 0.0, None, n_rows, raw=raw, ms=ms,
                             extras={"grammar_gap": gap, "net_ms": net_ms})
        cands = [(t, _confidence(c, alts[t], free - lp)) for t, (lp, _gn, c) in ranked[:5]]
        ranked_plates = rank_candidates(cands, self.grammars, rows=n_rows)
        grammar = classify(best_text, self.grammars, rows=n_rows)
        candidates = tuple(Candidate(r.text, round(min(1.0, r.score), 4), r.grammar)
                           for r in ranked_plates)
        return OcrResult(best_text, round(conf, 4), grammar.name if grammar else _g, n_rows,
                         char_conf=tuple(round(c, 4) for c in best_conf),
                         char_alt=tuple(round(c, 4) for c in alts[best_text]),
                         candidates=candidates, raw=raw, ms=ms,
                         extras={"grammar_gap": gap, "net_ms": net_ms,
                                 "select_conf": _confidence(best_conf, (), gap)})

    def _read_as(self, plate: np.ndarray, n: int) -> OcrResult:
        if n == 1:
            return self.read_rows([plate])
        top, bottom = split_rows(plate)
        if self.join_rows:
            height = self.line_card.height if self.line_card is not None else REC_HEIGHT
            return self.read_rows([join_rows(top, bottom, height)], plate_rows=2)
        return self.read_rows([top, bottom])

    def read(self, crop: np.ndarray, rows: int | None = None, *, thorough: bool = True
             ) -> OcrResult:
        """Read a plate crop (BGR); `rows` None decides one or two rows from shape and scores.

        `thorough` False (live frames, where voting over frames follows) reads each crop once:
        no second row count, no re-cuts of unsure crops.
        """
        t0 = time.perf_counter()
        plate = rectify(crop)
        h, w = plate.shape[:2]
        ratio = w / max(1, h)
        # VN two-row crops measure w/h 0.75-2.14, one-row 1.67-4.73 (loose crops overlap):
        # in between, the likelier count first, the other only if the first is unsure
        options = ([rows] if rows else [1] if ratio >= 3.2 else [2] if ratio <= 1.8
                   else [1, 2] if ratio >= 2.4 else [2, 1])
        best: OcrResult | None = None
        for n in options:
            if best is not None and (not thorough or (best.grammar and selection(best) >= 0.9)):
                break
            res = self._read_as(plate, n)
            if best is None or _better(res, best):
                best = res
        assert best is not None
        if thorough and selection(best) < self.retry_below:
            # unsure: read slightly different cuts of the same crop and keep the surest reading
            # (a cut-off edge or a row split through a character is the usual cause)
            first = best
            for variant in _variants(plate):
                for n in ([best.rows] if best.grammar else options):
                    res = self._read_as(variant, n)
                    if _better(res, best):
                        best = res
            best = cap_changed(first, best)
        return replace(best, ms=(time.perf_counter() - t0) * 1000)


def _confidence(char_conf: Sequence[float], char_alt: Sequence[float], gap: float) -> float:
    """How sure a layout read is (0..1).

    Its weakest character, discounted by the strongest runner-up character anywhere on the
    plate and by how much less likely than the free read it is. The runner-up factor was added
    after the validation crops showed confident misreads whose weakest character was still
    0.82-0.89 but had a 10-16 % second choice (a cut-off `7` read `2`, a blurred `G` read `6`):
    it moves those below the policy's 0.80 and leaves reads whose every character has one
    clear choice alone.
    """
    if not char_conf:
        return 0.0
    runner_up = max(char_alt, default=0.0)
    return min(char_conf) * (1.0 - runner_up) * math.exp(-max(0.0, gap) / 4)


def rec_batch(rows: Sequence[np.ndarray], min_width: int) -> tuple[np.ndarray, list[int]]:
    """PP-OCR's input for row images (BGR): height 48, aspect kept, padded to one width.

    Returns the (N, 3, 48, W) batch, normalized to -1..1, and each row's own width.
    """
    ratios = [r.shape[1] / max(1, r.shape[0]) for r in rows]
    width = max(math.ceil(REC_HEIGHT * max(max(ratios), min_width / REC_HEIGHT)), 16)
    batch = np.zeros((len(rows), 3, REC_HEIGHT, width), np.float32)
    widths = []
    for i, (img, ratio) in enumerate(zip(rows, ratios, strict=True)):
        w = min(width, max(8, math.ceil(REC_HEIGHT * ratio)))
        resized = cv2.resize(img, (w, REC_HEIGHT)).astype(np.float32)
        batch[i, :, :, :w] = (resized.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
        widths.append(w)
    return batch, widths


def _variants(plate: np.ndarray) -> list[np.ndarray]:
    """Re-cuts of a crop: a grey margin added (for characters touching the edge), edges shaved."""
    h, w = plate.shape[:2]
    dy, dx = max(1, h // 12), max(1, w // 30)
    padded = cv2.copyMakeBorder(plate, dy, dy, dx * 2, dx * 2, cv2.BORDER_REPLICATE)
    return [padded, plate[dy : h - dy, dx : w - dx], plate[:, dx * 2 : w - dx * 2]]


def _better(a: OcrResult, b: OcrResult) -> bool:
    if (a.grammar is None) != (b.grammar is None):
        return a.grammar is not None
    return selection(a) > selection(b)


def selection(res: OcrResult) -> float:
    """The score that picks among readings of one crop (row counts, re-cuts, inner crops).

    It is the confidence without the runner-up discount: the discount only makes the reported
    confidence more cautious; used for choosing, it sent more crops through re-cuts, where the
    surest re-cut was twice a wrong one (validation crops ndata121, u7696_AK5D11).
    """
    return res.extras.get("select_conf", res.confidence)


def cap_changed(first: OcrResult, best: OcrResult) -> OcrResult:
    """`best` with its confidences capped at `first`'s if it changed `first`'s text.

    Another cut of the same crop may change the text but cannot make it surer than the first
    read (on the validation crops a re-cut once turned an unsure right read into a 0.97 wrong
    one); a reading that agrees with the first keeps its own confidence.
    """
    if not first.grammar or best.text == first.text:
        return best
    cap = first.confidence
    return replace(best, confidence=min(best.confidence, cap),
                   candidates=tuple(replace(c, confidence=min(c.confidence, cap))
                                    for c in best.candidates))
