"""Train gate-edge's own plate-line recognizer (small CRNN, CTC) on CPU and export ONNX + card.

    python -m training.train_recognizer --epochs 24 --synthetic 12000 --install

Data: `training/recognizer_data.py` (real dev crops the benchmark never reads, plus synthetic
plates from the camera simulator's artwork). Torch is needed only here (`[train]` extra); the
runtime loads the ONNX with onnxruntime (`edge/plates/linerec.py`). Seeded: the same command
on the same data gives the same lines and the same initial weights (CPU kernels may still
differ in the last bits between machines).

The model card `plate_recognizer.json` carries the input size, the charset (index 0 = CTC
blank, then the card's characters) and the training metadata, including exact-match figures
with greedy decoding on the benchmark's evaluation split (never used for any choice here).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from training.dataset import data_root, is_val_cn
from training.recognizer_data import build_lines, charset, check_charset, to_line

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "edge" / "models"
HEIGHT, WIDTH = 32, 192


def build_model(n_classes: int, width: int = 1) -> Any:
    """The CRNN: 5 conv blocks (height 32 -> 1, width / 4), a BiLSTM, a linear CTC head."""
    import torch
    from torch import nn

    c = [int(v * width) for v in (32, 64, 96, 96, 128)]

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]

    class CRNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cnn = nn.Sequential(
                *block(1, c[0]), nn.MaxPool2d(2),              # 16 x 96
                *block(c[0], c[1]), nn.MaxPool2d(2),           # 8 x 48
                *block(c[1], c[2]), *block(c[2], c[3]), nn.MaxPool2d((2, 1)),  # 4 x 48
                *block(c[3], c[4]), nn.MaxPool2d((2, 1)),      # 2 x 48
                nn.Conv2d(c[4], c[4], (2, 1), bias=False), nn.BatchNorm2d(c[4]),
                nn.ReLU(inplace=True),                         # 1 x 48
            )
            self.rnn = nn.LSTM(c[4], 96, bidirectional=True, batch_first=True)
            self.drop = nn.Dropout(0.2)
            self.head = nn.Linear(192, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.cnn(x).squeeze(2).permute(0, 2, 1)  # (N, T, C)
            f, _ = self.rnn(f)
            return self.head(self.drop(f))  # logits (N, T, classes)

    return CRNN()


class Exportable:
    """Wraps the CRNN so the ONNX output is softmax probabilities, as the runtime expects."""

    @staticmethod
    def wrap(model: Any) -> Any:
        import torch
        from torch import nn

        class WithSoftmax(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return torch.softmax(self.model(x), dim=-1)

        return WithSoftmax()


def greedy(probs: np.ndarray, chars: list[str]) -> str:
    """Best-path CTC decoding (index 0 blank)."""
    idx = probs.argmax(axis=-1)
    out, prev = [], 0
    for i in idx:
        if i != 0 and i != prev:
            out.append(chars[i - 1])
        prev = int(i)
    return "".join(out)


def train(lines: np.ndarray, texts: list[str], chars: list[str], *, epochs: int, batch: int,
          lr: float, seed: int, threads: int, monitor: int) -> tuple[Any, dict[str, float]]:
    """CTC training with AdamW and a one-cycle schedule; the last `monitor` lines are held out."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    index = {ch: i + 1 for i, ch in enumerate(chars)}
    n_train = len(lines) - monitor
    x_all = torch.from_numpy((lines.astype(np.float32) / 255.0 - 0.5) / 0.5).unsqueeze(1)
    targets = [torch.tensor([index[c] for c in t], dtype=torch.long) for t in texts]
    model = build_model(len(chars) + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * max(1, (n_train + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.15)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.monotonic()
    loss_val = 0.0
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n_train, generator=gen)
        total, count = 0.0, 0
        for k in range(0, n_train, batch):
            ids = perm[k : k + batch]
            x = x_all[ids]
            # light on-line augmentation: random horizontal shift of a few pixels
            shift = int(torch.randint(-4, 5, (1,), generator=gen))
            if shift:
                x = torch.roll(x, shift, dims=3)
            tg = [targets[i] for i in ids.tolist()]
            logits = model(x)
            logp = logits.log_softmax(-1).permute(1, 0, 2)  # (T, N, C)
            in_len = torch.full((len(tg),), logp.shape[0], dtype=torch.long)
            tg_len = torch.tensor([len(t) for t in tg], dtype=torch.long)
            loss = ctc(logp, torch.cat(tg), in_len, tg_len)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            total += float(loss) * len(tg)
            count += len(tg)
        loss_val = total / max(1, count)
        acc = exact(model, x_all[n_train:], texts[n_train:], chars)
        log.info("epoch %d/%d  loss %.4f  monitor exact %.2f %%  (%.0f s)", epoch + 1, epochs,
                 loss_val, acc, time.monotonic() - t0)
    return model, {"train_seconds": round(time.monotonic() - t0, 1),
                   "final_loss": round(loss_val, 4),
                   "monitor_exact_pct": exact(model, x_all[n_train:], texts[n_train:], chars)}


def exact(model: Any, x: Any, texts: list[str], chars: list[str]) -> float:
    """Greedy exact match (%) of the model on lines `x`."""
    import torch

    if not texts:
        return 0.0
    model.eval()
    ok = 0
    with torch.no_grad():
        for k in range(0, len(texts), 256):
            probs = model(x[k : k + 256]).softmax(-1).numpy()
            ok += sum(greedy(p, chars) == t for p, t in zip(probs, texts[k : k + 256],
                                                            strict=True))
    return round(100.0 * ok / len(texts), 2)


def evaluation_split(root: Path) -> dict[str, list[tuple[Path, str, int]]]:
    """The benchmark's evaluation crops: verified VN (not unreadable) and the held-out CN half."""
    sets: dict[str, list[tuple[Path, str, int]]] = {}
    with (root / "vn_plates" / "verified.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["verdict"] != "unreadable":
                sets.setdefault(f"vn_{r['rows']}row", []).append(
                    (root / "vn_plates" / "images" / r["file"], r["text_verified"],
                     int(r["rows"])))
    with (root / "cn_plates" / "labels.csv").open(encoding="utf-8") as fh:
        sets["cn"] = [(root / "cn_plates" / "images" / r["file"], r["text"], 1)
                      for r in csv.DictReader(fh) if is_val_cn(r["file"])]
    return sets


def evaluate_onnx(onnx: Path, chars: list[str], root: Path) -> dict[str, float]:
    """Greedy exact match of the exported model on the evaluation split (known row counts)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    out: dict[str, float] = {}
    for name, items in evaluation_split(root).items():
        ok = 0
        for path, text, rows in items:
            img = cv2.imread(str(path))
            if img is None:
                raise FileNotFoundError(f"unreadable evaluation crop {path}")
            line = to_line(img, rows, HEIGHT, WIDTH)
            x = ((line.astype(np.float32) / 255.0 - 0.5) / 0.5)[None, None]
            ok += greedy(sess.run(None, {"line": x})[0][0], chars) == text
        out[f"{name}_greedy_exact_pct"] = round(100.0 * ok / max(1, len(items)), 2)
        out[f"{name}_n"] = len(items)
    return out


def export(model: Any, path: Path) -> None:
    """ONNX with a dynamic batch; input `line` (N, 1, 32, 192), output `probs` (N, 48, C)."""
    import torch

    model.eval()
    wrapped = Exportable.wrap(model).eval()
    dummy = torch.zeros(1, 1, HEIGHT, WIDTH)
    torch.onnx.export(wrapped, (dummy,), str(path), input_names=["line"],
                      output_names=["probs"], dynamic_axes={"line": {0: "n"}, "probs": {0: "n"}},
                      opset_version=17, dynamo=False)


def main(argv: list[str] | None = None) -> int:
    """CLI entry: build lines, train, export ONNX + card, optionally install into edge/models."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "gate-edge-rec",
                    help="work folder (outside the repository)")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", type=int, default=12000, help="synthetic plates drawn")
    ap.add_argument("--real-copies", type=int, default=4,
                    help="each real crop as is plus this many - 1 degraded copies")
    ap.add_argument("--real-limit", type=int, default=None, help="cap real crops per source")
    ap.add_argument("--monitor", type=int, default=400,
                    help="training lines held out to watch progress (not the evaluation split)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--no-eval", action="store_true", help="skip the evaluation-split figures")
    ap.add_argument("--install", action="store_true", help="copy ONNX + card into edge/models/")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    random.seed(args.seed)
    np.random.seed(args.seed)
    cv2.setNumThreads(1)
    root = data_root()
    if root is None:
        log.warning("../shared/data not found: training on synthetic plates only")
    chars = charset()
    t0 = time.monotonic()
    lines, texts, sources = build_lines(root, synthetic=args.synthetic,
                                        real_copies=args.real_copies, seed=args.seed,
                                        height=HEIGHT, width=WIDTH, real_limit=args.real_limit)
    bad = set(check_charset(texts, chars))
    if bad:
        log.warning("dropping %d lines with characters outside the charset: %s", len(bad),
                    sorted(bad)[:10])
        keep = [i for i, t in enumerate(texts) if t not in bad]
        lines, texts, sources = lines[keep], [texts[i] for i in keep], [sources[i] for i in keep]
    data_s = time.monotonic() - t0
    log.info("%d training lines in %.0f s (%s)", len(lines), data_s,
             {s: sources.count(s) for s in sorted(set(sources))})
    monitor = min(args.monitor, len(lines) // 5)
    model, results = train(lines, texts, chars, epochs=args.epochs, batch=args.batch,
                           lr=args.lr, seed=args.seed, threads=args.threads, monitor=monitor)
    args.out.mkdir(parents=True, exist_ok=True)
    onnx = args.out / "plate_recognizer.onnx"
    export(model, onnx)
    import torch

    # the torch weights stay in the work folder (not shipped): a later run can start from them
    torch.save(model.state_dict(), args.out / "plate_recognizer.pt")
    results["data_seconds"] = round(data_s, 1)
    if root is not None and not args.no_eval:
        results.update(evaluate_onnx(onnx, chars, root))
    card = {
        "name": "plate_recognizer",
        "architecture": "CRNN: 6 conv (32-64-96-96-128-128 channels) + BiLSTM 96 + linear, CTC",
        "input": {"height": HEIGHT, "width": WIDTH, "channels": 1, "normalize": "x/127.5 - 1",
                  "two_rows": "split_rows, then joined side by side (edge.plates.rectify)"},
        "output": "probs (N, T, 1 + len(charset)): softmax per frame, index 0 = CTC blank",
        "charset": "".join(chars),
        "epochs": args.epochs,
        "seed": args.seed,
        "data": {"real_lines": sum(s != "synthetic" for s in sources),
                 "real_copies": args.real_copies,
                 "synthetic": args.synthetic,
                 "vn_plates": "labels.csv minus verified.csv crops and texts within one edit",
                 "cn_plates": "is_val_cn(file) False (the half the benchmark does not read)"},
        "metrics": results,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m training.train_recognizer " + " ".join(
            sys.argv[1:] if argv is None else argv),
    }
    (args.out / "plate_recognizer.json").write_text(json.dumps(card, indent=2,
                                                               ensure_ascii=False) + "\n")
    if args.install:
        MODELS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx, MODELS_DIR / "plate_recognizer.onnx")
        shutil.copyfile(args.out / "plate_recognizer.json", MODELS_DIR / "plate_recognizer.json")
        log.info("installed %s (%d bytes)", MODELS_DIR / "plate_recognizer.onnx",
                 onnx.stat().st_size)
    print(json.dumps({"onnx": str(onnx), **results}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
