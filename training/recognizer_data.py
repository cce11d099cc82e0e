"""Training lines for the plate recognizer: real dev crops the benchmark never reads + synthetic plates.

What is kept out (the benchmark's evaluation split, `benchmarks/bench_plate_accuracy.py`):
- VN: every crop of `vn_plates/verified.csv`, every crop whose text is a verified text (pseudo or
  verified), and every crop whose text is one edit away from one (likely the same vehicle with
  an OCR slip, shared/data/README.md).
- CN: the half of `cn_plates` with `is_val_cn(file)`, and any other crop with one of its texts.
Synthetic plates come from the camera simulator's artwork (`simulators/camera/artwork.py`:
VN one-row white and yellow, two-row incl. motorbike and trailer series, CN with a CJK font),
degraded as a border camera degrades them (perspective, blur, light, noise, JPEG).

Every sample goes through the run-time geometry (`rectify`, two-row split and join,
`edge.plates.linerec.line_image`) so the network learns the lines it will be given.
"""

from __future__ import annotations

import csv
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.domain.plates import VN_ONE_ROW, VN_TRAILER, VN_TWO_ROW
from edge.plates.linerec import line_image
from edge.plates.rectify import rectify
from simulators.camera.artwork import cjk_font_path, render_cn_plate, render_vn_plate
from simulators.camera.scene import CN_PROVINCES
from training.dataset import is_val_cn

log = logging.getLogger(__name__)

DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
VN_SERIES = "ABCDEFGHKLMNPSTUVXYZ"  # Circular 58/2020: never I, J, O, Q, W
CN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


def charset() -> list[str]:
    """The recognizer's characters (blank excluded): digits, Latin capitals, CN provinces."""
    return list(DIGITS + LETTERS + CN_PROVINCES)


@dataclass(frozen=True)
class Sample:
    """One training crop (BGR) with its normalized text and row count."""

    image: np.ndarray
    text: str
    rows: int
    source: str


def one_edit(a: str, b: str) -> bool:
    """True when a and b differ by at most one insertion, deletion or substitution."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def vn_training_rows(root: Path) -> list[dict[str, str]]:
    """Dev VN crops outside the evaluation set and away from its texts (see module doc)."""
    with (root / "vn_plates" / "verified.csv").open(encoding="utf-8") as fh:
        verified = list(csv.DictReader(fh))
    files = {r["file"] for r in verified}
    texts = {r["text_verified"] for r in verified} | {r["text_pseudo"] for r in verified}
    with (root / "vn_plates" / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    keep = [r for r in rows if r["file"] not in files
            and not any(one_edit(r["text"], t) for t in texts)]
    log.info("vn_plates: %d of %d crops usable for training (%d verified crops, %d texts kept out)",
             len(keep), len(rows), len(files), len(texts))
    return keep


def cn_training_rows(root: Path) -> list[dict[str, str]]:
    """The half of cn_plates the benchmark does not read, minus any crop with one of its texts."""
    with (root / "cn_plates" / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    val_texts = {r["text"] for r in rows if is_val_cn(r["file"])}
    keep = [r for r in rows if not is_val_cn(r["file"]) and r["text"] not in val_texts]
    log.info("cn_plates: %d of %d crops usable for training", len(keep), len(rows))
    return keep


def real_samples(root: Path | None, limit: int | None = None) -> list[Sample]:
    """The real training crops (empty without ../shared/data)."""
    if root is None:
        return []
    out: list[Sample] = []
    for folder, rows in (("vn_plates", vn_training_rows(root)),
                         ("cn_plates", cn_training_rows(root))):
        for r in rows[:limit]:
            img = cv2.imread(str(root / folder / "images" / r["file"]))
            if img is None:
                log.warning("unreadable training crop %s", r["file"])
                continue
            out.append(Sample(img, r["text"], int(r["rows"]), folder))
    return out


def _fill(template: str, rng: random.Random) -> tuple[str, int]:
    """A random text of a grammar template (`9` digit, `@` series letter) and its row count."""
    out = []
    for ch in template:
        if ch == "9":
            out.append(rng.choice(DIGITS))
        elif ch == "@":
            out.append(rng.choice(VN_SERIES))
        elif ch.isalnum():
            out.append(ch)
    return "".join(out), 2 if "/" in template else 1


def random_plate(rng: random.Random) -> tuple[np.ndarray, str, int] | None:
    """Draw one random plate (RGB art, text, rows) with the simulator's artwork."""
    kind = rng.random()
    if kind < 0.3 and cjk_font_path() is not None:
        letters = CN_LETTERS
        tail = "".join(rng.choice(DIGITS * 2 + letters) for _ in range(5))
        prov = "皖" if rng.random() < 0.3 else rng.choice(CN_PROVINCES)
        text = prov + rng.choice(letters) + tail
        art = render_cn_plate(text, rng=rng)
        return (art, text, 1) if art is not None else None
    if kind < 0.55:
        templates = VN_ONE_ROW.templates + VN_TRAILER.templates[0:1]
    else:
        templates = VN_TWO_ROW.templates + VN_TRAILER.templates[1:2] * 2 \
            + VN_TRAILER.templates[3:4]
    text, rows = _fill(rng.choice(templates), rng)
    art = render_vn_plate(text, rows, yellow=rng.random() < 0.35, rng=rng)
    return art, text, rows


def degrade(img: np.ndarray, rng: random.Random, strength: float = 1.0) -> np.ndarray:
    """A plate crop as a camera and a detector box give it: loose or tight, tilted, blurred, dim.

    `img` is BGR; `strength` < 1 for real crops, which are already photographs.
    """
    nrng = np.random.default_rng(rng.randrange(2**32))
    h, w = img.shape[:2]
    # margin around the plate (detector boxes are loose or clip an edge)
    m = [int(rng.uniform(-0.04, 0.14) * strength * s) for s in (h, h, w, w)]
    top, bottom, left, right = (max(0, v) for v in m)
    if top or bottom or left or right:
        img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_REPLICATE
                                 if rng.random() < 0.5 else cv2.BORDER_CONSTANT,
                                 value=[rng.randrange(256)] * 3)
    h, w = img.shape[:2]
    img = img[max(0, -m[0]) : h - max(0, -m[1]), max(0, -m[2]) : w - max(0, -m[3])]
    h, w = img.shape[:2]
    # perspective: corners jittered, a small rotation
    j = 0.07 * strength
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = np.array([[x + rng.uniform(-j, j) * w, y + rng.uniform(-j, j) * h] for x, y in src],
                   np.float32)
    mat = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(img, mat, (w, h), borderMode=cv2.BORDER_REPLICATE)
    # resolution: from CN-crop size (24 px high) to a close-up
    target_h = int(rng.uniform(18, 110) if strength >= 1 else h * rng.uniform(0.5, 1.0))
    scale = max(0.05, target_h / h)
    img = cv2.resize(img, (max(8, int(w * scale)), max(8, int(h * scale))),
                     interpolation=cv2.INTER_AREA)
    # blur: gaussian or horizontal motion
    if rng.random() < 0.5:
        k = rng.choice((3, 3, 5))
        if rng.random() < 0.5:
            img = cv2.GaussianBlur(img, (k, k), 0)
        else:
            kern = np.zeros((k, k), np.float32)
            kern[k // 2, :] = 1.0 / k
            img = cv2.filter2D(img, -1, kern)
    # light: contrast, brightness, gamma, a glare or shadow gradient, colour cast
    f = img.astype(np.float32)
    f = f * rng.uniform(0.55, 1.3) + rng.uniform(-50, 40) * strength
    if rng.random() < 0.3:
        ramp = np.linspace(rng.uniform(-60, 60), rng.uniform(-60, 60), f.shape[1])
        f += ramp[None, :, None] * strength
    f += np.array([rng.uniform(-15, 15) for _ in range(3)], np.float32)
    f = np.clip(f, 0, 255)
    f = 255.0 * (f / 255.0) ** rng.uniform(0.7, 1.4)
    f += nrng.normal(0, rng.uniform(0, 10) * strength, f.shape)
    img = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(25, 90)])
        back = cv2.imdecode(jpg, cv2.IMREAD_COLOR) if ok else None
        if back is not None:
            img = back
    return img


def synthetic_plates(rng: random.Random, count: int
                     ) -> Iterator[tuple[np.ndarray, str, int]]:
    """`count` random plates drawn and degraded: (BGR crop, text, rows)."""
    made = 0
    while made < count:
        plate = random_plate(rng)
        if plate is None:
            continue
        art, text, rows = plate
        yield degrade(cv2.cvtColor(art, cv2.COLOR_RGB2BGR), rng), text, rows
        made += 1


def to_line(img: np.ndarray, rows: int, height: int, width: int) -> np.ndarray:
    """The run-time geometry: rectify, split and join two rows, resize to the model's line."""
    return line_image(rectify(img), rows, height, width)


def build_lines(root: Path | None, *, synthetic: int, real_copies: int, seed: int,
                height: int, width: int, real_limit: int | None = None
                ) -> tuple[np.ndarray, list[str], list[str]]:
    """All training lines (N, H, W uint8), their texts and sources, in a seeded order."""
    rng = random.Random(seed)
    lines: list[np.ndarray] = []
    texts: list[str] = []
    sources: list[str] = []
    for s in real_samples(root, real_limit):
        for k in range(real_copies):
            img = s.image if k == 0 else degrade(s.image, rng, strength=0.5)
            lines.append(to_line(img, s.rows, height, width))
            texts.append(s.text)
            sources.append(s.source)
    for img, text, rows in synthetic_plates(rng, synthetic):
        lines.append(to_line(img, rows, height, width))
        texts.append(text)
        sources.append("synthetic")
    order = list(range(len(lines)))
    rng.shuffle(order)
    return (np.stack([lines[i] for i in order]), [texts[i] for i in order],
            [sources[i] for i in order])


def check_charset(texts: list[str], chars: list[str]) -> list[str]:
    """Texts with a character outside the charset (dropped by the trainer, reported)."""
    known = set(chars)
    return [t for t in texts if not set(t) <= known]


__all__ = ["build_lines", "charset", "check_charset", "degrade", "one_edit",
           "random_plate", "real_samples", "synthetic_plates", "to_line"]
