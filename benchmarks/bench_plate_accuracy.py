"""Plate-reading accuracy on data no model trained on, stage by stage.

    python benchmarks/bench_plate_accuracy.py [--limit N] [--errors]

- VN crops: vn_plates/verified.csv (hand-checked; its crops and texts are kept out of training),
  text_verified, verdict != unreadable (strict); one-row and two-row separately.
- CN crops: the held-out hash half of cn_plates (training/dataset.py: is_val_cn).
- Detection: recall / precision at IoU >= 0.5 on the held-out quarter of vn_scenes.
- End to end: simulator frames rendered from seeds training never used (texts known).
Each figure is given for the full pipeline and for PP-OCRv4 alone (rapidocr's recognizer, greedy
decoding, naive half-height two-row split, no grammar) so the value of each stage shows.
Ends with one JSON line of headline figures and their targets.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.config.cameras import ReaderConfig  # noqa: E402
from edge.plates.detector import PlateDetector  # noqa: E402
from edge.plates.reader import PlateReader, crop_box  # noqa: E402
from simulators.camera.scene import random_truck, render  # noqa: E402
from training.dataset import data_root, is_val_cn, is_val_scene  # noqa: E402

# edge/config/policy.py: below this a voted plate read is LOW_CONFIDENCE (goes to an officer)
POLICY_CONFIDENCE = 0.80


def norm(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


class NaivePPOCR:
    """PP-OCRv4 alone as rapidocr ships it: recognition only, greedy, naive row split."""

    def __init__(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.engine = RapidOCR(use_det=False, use_cls=False, intra_op_num_threads=2)

    def read(self, crop: np.ndarray) -> str:
        h, w = crop.shape[:2]
        parts = [crop] if w / h > 2.5 else [crop[: h // 2], crop[h // 2 :]]
        out = ""
        for part in parts:
            res, _ = self.engine(part, use_det=False, use_cls=False)
            if res:
                out += norm(res[0][0])
        return out


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def pct(ok: int, n: int) -> float:
    return round(100.0 * ok / n, 2) if n else 0.0


def crops_eval(reader: PlateReader, naive: NaivePPOCR, items: list[tuple[Path, str, str]],
               show: bool, dump: Path | None = None,
               others: dict[str, PlateReader] | None = None) -> dict[str, dict[str, float]]:
    """items: (image, truth, group); exact match per group for every method.

    `sure_wrong` counts reads at or above the policy's confidence threshold that are wrong:
    the ones that would not be sent to an officer. `others` are readers with other recognizer
    modes (own model, PP-OCRv4, cascade, vote), counted as `<mode>`, `<mode>_sure_wrong` ...
    """
    res: dict[str, dict[str, float]] = {}
    others = others or {}
    for path, truth, group in items:
        img = cv2.imread(str(path))
        if img is None:
            raise FileNotFoundError(f"unreadable evaluation crop {path}")
        ours = reader.read_crop(img)
        base = naive.read(img)
        g = res.setdefault(group, {"n": 0, "ours": 0, "naive": 0, "ours_grammar": 0,
                                   "sure": 0, "sure_wrong": 0, "ms": 0.0})
        g["n"] += 1
        g["ours"] += ours.text == truth
        g["naive"] += base == truth
        g["ours_grammar"] += ours.grammar is not None
        g["sure"] += ours.confidence >= POLICY_CONFIDENCE
        g["sure_wrong"] += ours.confidence >= POLICY_CONFIDENCE and ours.text != truth
        for mode, other in others.items():
            t0 = time.perf_counter()
            r = other.read_crop(img)
            g[f"{mode}_ms"] = g.get(f"{mode}_ms", 0.0) + (time.perf_counter() - t0) * 1000
            g[mode] = g.get(mode, 0) + (r.text == truth)
            g[f"{mode}_sure"] = g.get(f"{mode}_sure", 0) + (r.confidence >= POLICY_CONFIDENCE)
            g[f"{mode}_sure_wrong"] = g.get(f"{mode}_sure_wrong", 0) + (
                r.confidence >= POLICY_CONFIDENCE and r.text != truth)
            if show and r.text != truth:
                print(f"  miss {group} {path.name} [{mode}]: truth {truth} read {r.text} "
                      f"(raw {r.raw}, conf {r.confidence})")
        if show and ours.text != truth:
            print(f"  miss {group} {path.name}: truth {truth} ours {ours.text} "
                  f"(raw {ours.raw}, conf {ours.confidence}, rows {ours.rows}) naive {base}")
        if dump is not None and ours.text != truth:
            dump.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(dump / f"{group}_{path.stem}_{ours.text or 'none'}.png"), img)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--limit", type=int, default=0, help="at most N items per set (0: all)")
    ap.add_argument("--errors", action="store_true", help="print every miss")
    ap.add_argument("--dump", type=Path, default=None, help="write every missed crop here")
    ap.add_argument("--synthetic", type=int, default=40, help="end-to-end simulator frames")
    ap.add_argument("--modes", default="ppocr,own,cascade,vote",
                    help="recognizer modes measured beside the default one (comma-separated; "
                         "empty: none)")
    args = ap.parse_args()
    root = data_root()
    reader = PlateReader(with_detector=True)  # the configured default (ReaderConfig)
    default_mode = ReaderConfig().recognizer
    others = {mode: PlateReader(with_detector=True, recognizer=mode)
              for mode in args.modes.split(",") if mode}
    naive = NaivePPOCR()
    out: dict[str, float | None] = {"bench": "plate_accuracy"}  # type: ignore[dict-item]
    if root is None:
        print("../shared/data not found: only the synthetic end-to-end figure is measured")
    else:
        with (root / "vn_plates" / "verified.csv").open(encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if r["verdict"] != "unreadable"]
        items = [(root / "vn_plates" / "images" / r["file"], r["text_verified"],
                  f"vn_{r['rows']}row") for r in rows]
        with (root / "cn_plates" / "labels.csv").open(encoding="utf-8") as fh:
            cn = [r for r in csv.DictReader(fh) if is_val_cn(r["file"])]
        items += [(root / "cn_plates" / "images" / r["file"], r["text"], "cn") for r in cn]
        if args.limit:
            random.Random(0).shuffle(items)
            per: dict[str, int] = {}
            items = [it for it in items if per.setdefault(it[2], 0) < args.limit
                     and not per.__setitem__(it[2], per[it[2]] + 1)]
        t0 = time.perf_counter()
        res = crops_eval(reader, naive, items, args.errors, args.dump, others)
        print(f"crops read in {time.perf_counter() - t0:.1f} s")
        for group in sorted(res):
            g = res[group]
            print(f"{group:8s} n={int(g['n']):4d}  ours {pct(int(g['ours']), int(g['n'])):6.2f} %"
                  f"   PP-OCRv4 alone {pct(int(g['naive']), int(g['n'])):6.2f} %")
            out[f"{group}_exact_pct"] = pct(int(g["ours"]), int(g["n"]))
            out[f"{group}_ppocr_alone_pct"] = pct(int(g["naive"]), int(g["n"]))
            out[f"{group}_n"] = int(g["n"])
            print(f"{'':8s} reads at confidence >= {POLICY_CONFIDENCE}: {int(g['sure'])}, "
                  f"of them wrong: {int(g['sure_wrong'])}")
            out[f"{group}_sure_wrong"] = int(g["sure_wrong"])
            for mode in others:
                n = int(g["n"])
                print(f"{'':8s} recognizer {mode:8s}: {pct(int(g[mode]), n):6.2f} %  sure "
                      f"{int(g[mode + '_sure'])}, sure wrong {int(g[mode + '_sure_wrong'])}, "
                      f"{g[mode + '_ms'] / n:.1f} ms per crop")
                out[f"{group}_{mode}_exact_pct"] = pct(int(g[mode]), n)
                out[f"{group}_{mode}_sure_wrong"] = int(g[mode + "_sure_wrong"])
                out[f"{group}_{mode}_crop_ms"] = round(g[mode + "_ms"] / n, 1)
        out["recognizer"] = default_mode  # type: ignore[assignment]
        # detection on the held-out vn_scenes quarter, standard and fast (ROI) detector
        scenes = sorted(p for p in (root / "vn_scenes" / "images").glob("*.jpg")
                        if is_val_scene(p.name))[: args.limit or None]
        standard: PlateDetector = reader.detector  # type: ignore[assignment]
        for key, det in (("det", standard), ("det_fast", reader.detector_for((0, 0, 1, 1)))):
            tp = fp = fn = 0
            for p in scenes:
                img = cv2.imread(str(p))
                h, w = img.shape[:2]
                truth = []
                for line in (root / "vn_scenes" / "labels" / f"{p.stem}.txt").read_text() \
                        .split("\n"):
                    if line.strip():
                        _, cx, cy, bw, bh = (float(v) for v in line.split())
                        truth.append(((cx - bw / 2) * w, (cy - bh / 2) * h,
                                      (cx + bw / 2) * w, (cy + bh / 2) * h))
                dets = [d for d in det.detect(img) if d.label == "plate"]
                matched = set()
                for d in dets:
                    hit = next((i for i, t in enumerate(truth)
                                if i not in matched and iou(d.box, t) >= 0.5), None)
                    if hit is None:
                        fp += 1
                    else:
                        matched.add(hit)
                        tp += 1
                fn += len(truth) - len(matched)
                if args.errors and len(matched) < len(truth):
                    print(f"  {key} missed plate in {p.name}: {[d.box for d in dets]} vs {truth}")
            recall, precision = pct(tp, tp + fn), pct(tp, tp + fp)
            print(f"detection ({key}, {det.imgsz} px) on {len(scenes)} held-out vn_scenes: "
                  f"recall {recall} %  precision {precision} %  (IoU >= 0.5)")
            out.update({f"{key}_recall_pct": recall, f"{key}_precision_pct": precision})
    # end to end on simulator frames (texts known), seeds far from training's
    rng = random.Random(990_001)
    e2e_ok = e2e_n = c_ok = c_n = 0
    naive_ok = boxes_ok = 0
    for i in range(args.synthetic):
        truck = random_truck(rng)
        frame = render(truck, size=(1920, 1080), progress=rng.uniform(0.45, 1.0),
                       seed=990_001 + i)
        reads = reader.read_frame(frame.image)
        for obj in frame.objects:
            best = max((r for r in reads if iou(r.box, obj.box) >= 0.3),
                       key=lambda r: r.det_score, default=None)
            if obj.cls == 0:
                e2e_n += 1
                got = best.plate.text if best and best.plate else None
                e2e_ok += got == obj.text
                true_crop = crop_box(frame.image, [int(v) for v in obj.box])
                naive_ok += norm(naive.read(true_crop)) == obj.text
                boxes_ok += reader.read_crop(true_crop).text == obj.text
                if args.errors and got != obj.text:
                    print(f"  e2e miss {truck.condition}: {obj.text} -> {got}")
            else:
                c_n += 1
                got = best.container.text if best and best.container else None
                c_ok += got == obj.text
                if args.errors and got != obj.text:
                    print(f"  container miss {truck.condition}: {obj.text} -> {got}")
    print(f"end to end (simulator, {args.synthetic} frames): plates {pct(e2e_ok, e2e_n)} % "
          f"of {e2e_n}; containers {pct(c_ok, c_n)} % of {c_n}; "
          f"on the true boxes: ours {pct(boxes_ok, e2e_n)} %, PP-OCRv4 alone "
          f"{pct(naive_ok, e2e_n)} %")
    out.update({"e2e_plate_exact_pct": pct(e2e_ok, e2e_n), "e2e_container_exact_pct":
                pct(c_ok, c_n), "e2e_ppocr_alone_pct": pct(naive_ok, e2e_n),
                "e2e_true_boxes_ours_pct": pct(boxes_ok, e2e_n),
                "target_crop_exact_pct": 99.5, "target_det_recall_pct": 99.0})
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
