"""Detector training data: the hash split of vn_scenes plus synthetic frames from the simulator.

The real images are linked, never copied into the repository (shared/data/README.md); the dataset
folder lives outside the worktree. The validation part of vn_scenes is fixed by a hash of the file
name (`is_val_scene`) so training never sees it and the benchmark reports on exactly that part.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import random
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from simulators.camera.scene import (
    CLASS_CONTAINER,
    CLASS_PLATE,
    PlateSpec,
    random_truck,
    render,
)

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CLASS_NAMES = {CLASS_PLATE: "plate", CLASS_CONTAINER: "container_number"}


def data_root() -> Path | None:
    """`../shared/data` beside the project root (or a parent's, for worktrees), None if absent."""
    env = os.environ.get("GATE_EDGE_DATA")
    candidates = [Path(env)] if env else []
    candidates += [p / "shared" / "data" for p in PROJECT_ROOT.parents]
    for root in candidates:
        if (root / "vn_scenes").is_dir():
            return root.resolve()
    return None


def is_val_scene(name: str) -> bool:
    """Fixed held-out quarter of vn_scenes: second byte of sha1(file name) divisible by 4.

    The first byte is already even for every dev file (the dev/held-out split of the data), so
    the second byte is used."""
    return hashlib.sha1(name.encode()).digest()[1] % 4 == 0  # noqa: S324 - a split, not security


def is_val_cn(name: str) -> bool:
    """Fixed held-out half of cn_plates (the recognizer is not trained, but keep it clean)."""
    return hashlib.sha1(name.encode()).digest()[1] % 2 == 0  # noqa: S324


def verified_texts(root: Path) -> set[str]:
    """Plate texts of vn_plates/verified.csv: these crops and their texts never train anything."""
    with (root / "vn_plates" / "verified.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {r["text_verified"] for r in rows} | {r["text_pseudo"] for r in rows}


def training_crops(root: Path, limit: int, rng: random.Random) -> dict[str, np.ndarray]:
    """Dev VN crops whose text is not in verified.csv, to composite onto synthetic trucks."""
    banned = verified_texts(root)
    with (root / "vn_plates" / "labels.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["text"] not in banned]
    rng.shuffle(rows)
    crops: dict[str, np.ndarray] = {}
    for r in rows[:limit]:
        img = cv2.imread(str(root / "vn_plates" / "images" / r["file"]))
        if img is not None:
            crops[r["text"]] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return crops


def _link_scenes(root: Path, out: Path, split: str, val: bool) -> int:
    img_dir, lbl_dir = out / split / "images", out / split / "labels"
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for img in sorted((root / "vn_scenes" / "images").glob("*.jpg")):
        if is_val_scene(img.name) != val:
            continue
        dst = img_dir / f"scene_{img.name}"
        if not dst.exists():
            dst.symlink_to(img)
        label = root / "vn_scenes" / "labels" / f"{img.stem}.txt"
        (lbl_dir / f"scene_{img.stem}.txt").write_text(label.read_text())
        n += 1
    return n


def _write_synthetic(
    out: Path, split: str, count: int, seed: int, crops: dict[str, np.ndarray]
) -> None:
    img_dir, lbl_dir = out / split / "images", out / split / "labels"
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    texts = list(crops)
    for i in range(count):
        truck = random_truck(rng)
        use: dict[str, np.ndarray] = {}
        if texts and truck.tractor_plate and rng.random() < 0.3:
            text = rng.choice(texts)  # a real crop on the truck: realism the fonts lack
            truck = replace(truck, tractor_plate=PlateSpec(text, "VN", 1, True))
            use = {text: crops[text]}
        frame = render(truck, size=(1280, 720), progress=rng.uniform(0.35, 1.0),
                       seed=rng.randint(0, 2**31), crops=use)
        h, w = frame.image.shape[:2]
        name = f"synth_{seed}_{i:05d}"
        cv2.imwrite(str(img_dir / f"{name}.jpg"), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        lines = []
        for o in frame.objects:
            x0, y0, x1, y1 = o.box
            if x1 - x0 < 4 or y1 - y0 < 3:
                continue
            lines.append(f"{o.cls} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} "
                         f"{(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}")
        (lbl_dir / f"{name}.txt").write_text("\n".join(lines) + "\n")


def build(out: Path, *, synthetic: int, synthetic_val: int, seed: int = 1,
          max_scenes: int | None = None) -> Path:
    """Write a YOLO dataset (train/val folders + data.yaml) into `out`; returns the yaml path."""
    out.mkdir(parents=True, exist_ok=True)
    root = data_root()
    rng = random.Random(seed)
    crops: dict[str, np.ndarray] = {}
    if root is not None:
        n_train = _link_scenes(root, out, "train", val=False)
        n_val = _link_scenes(root, out, "val", val=True)
        crops = training_crops(root, 300, rng)
        log.info("vn_scenes: %d train, %d val (hash split)", n_train, n_val)
        if max_scenes is not None:  # smoke runs: a handful of real scenes on each side
            for split in ("train", "val"):
                for p in sorted((out / split / "images").glob("scene_*"))[max_scenes:]:
                    p.unlink()
                    (out / split / "labels" / f"{p.stem}.txt").unlink()
    else:
        log.warning("../shared/data absent: training on synthetic frames only")
    _write_synthetic(out, "train", synthetic, seed, crops)
    _write_synthetic(out, "val", synthetic_val, seed + 1000, {})
    yaml_path = out / "data.yaml"
    names = "\n".join(f"  {k}: {v}" for k, v in CLASS_NAMES.items())
    yaml_path.write_text(f"path: {out.resolve()}\ntrain: train/images\nval: val/images\n"
                         f"names:\n{names}\n")
    return yaml_path
