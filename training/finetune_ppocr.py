"""PP-OCRv4 recognition cut to the plate charset, and fine-tuned on plate rows (no PaddlePaddle).

    python -m training.finetune_ppocr --out /tmp/ppocr-cut --epochs 0 --install   # shipped
    python -m training.finetune_ppocr --out /tmp/ppocr-ft --epochs 3              # fine-tune

PP-OCRv4 (`ch_PP-OCRv4_rec_infer.onnx`, in the rapidocr-onnxruntime wheel) scores 6,625
characters per frame; a plate needs 67 of them. Its ONNX graph is converted to PyTorch by
onnx2torch (the converted network gives the ONNX outputs to 1e-6) and its output layer is cut
to the plate charset (blank, digits, Latin capitals, the CN province characters, space). With
`--epochs 0` that is all: the shipped `edge/models/plate_ppocr.onnx`, whose reads are the stock
model's and whose decoding is cheaper. With epochs, the network is trained on with CTC on
plate rows cut exactly as the run time cuts them (`rectify`, `split_rows`,
`edge.plates.ocr.rec_batch`); two such runs read the evaluation split worse than the stock
weights (docs/models.md) and were not kept. Either way the weights are written back into the
original ONNX graph (a torch.onnx re-export would freeze its reshapes to the traced width),
with the charset in the metadata the way PP-OCR keeps it, so `edge.plates.ocr.PlateRecognizer`
reads it unchanged.

Training data (`training/recognizer_data.py`): the real dev crops the benchmark never reads,
each as is and as mildly degraded copies, and synthetic plates from the camera simulator's
artwork. The machine-made VN labels do not say where a two-row plate's top row ends
(`54S16317`: `54-S1 / 6317` or `54-S / 163.17`); the split that best agrees with the stock
model's own reading of the two rows is taken. Batch norm statistics stay frozen (a few
thousand plates cannot re-estimate them better than PaddleOCR's corpus did).

Needs the `[train]` extra (torch, onnx, onnx2torch); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.plates.ctc import greedy
from edge.plates.ocr import PLATE_REC_MODEL, REC_HEIGHT, PlateRecognizer, rapidocr_rec_model, rec_batch
from edge.plates.rectify import rectify, split_rows
from simulators.camera.artwork import vn_display_rows
from training.dataset import data_root
from training.recognizer_data import charset, degrade, real_samples, synthetic_plates

log = logging.getLogger("finetune_ppocr")

MAX_WIDTH = 480  # a row wider than 10:1 is not a plate row; cap its width in training


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


# ---------------------------------------------------------------- the network

class PlateModel:
    """PP-OCRv4 with its output cut to the plate charset: an ONNX graph and a torch twin.

    Training happens on the torch twin; `to_onnx` writes its weights back into the original
    graph. (Exporting the torch module again with torch.onnx freezes PP-OCR's reshapes to the
    traced width; the original graph keeps its dynamic width.)
    """

    def __init__(self, charset_out: list[str]) -> None:
        import onnx
        import onnx.helper as oh
        import onnxruntime as ort
        from onnx import numpy_helper
        from onnx2torch import convert

        src = onnx.load(str(rapidocr_rec_model()))
        meta = {p.key: p.value for p in src.metadata_props}
        full = ["blank", *meta["character"].splitlines(), " "]
        index = {c: i for i, c in enumerate(full)}
        missing = [c for c in charset_out if c not in index]
        if missing:
            raise SystemExit(f"PP-OCRv4's charset lacks {''.join(missing)}")
        keep = [0, *(index[c] for c in charset_out), len(full) - 1]
        self.chars = [full[i] for i in keep]
        g = src.graph
        # weights are Constant nodes in this export; onnx2torch wants initializers
        nodes = []
        for n in g.node:
            if n.op_type == "Constant" and n.attribute[0].name == "value":
                g.initializer.append(numpy_helper.from_array(
                    numpy_helper.to_array(n.attribute[0].t), n.output[0]))
            else:
                nodes.append(n)
        del g.node[:]
        g.node.extend(nodes)
        # cut the output layer (MatMul + Add before the Softmax) to the plate charset
        soft = g.node[-1]
        if soft.op_type != "Softmax":
            raise SystemExit(f"unexpected PP-OCRv4 graph: last node {soft.op_type}")
        producers = {o: n for n in g.node for o in n.output}
        add = producers[soft.input[0]]
        inits = {t.name: t for t in g.initializer}
        bias_name = next(i for i in add.input if i in inits)
        matmul = producers[next(i for i in add.input if i not in inits)]
        weight_name = next(i for i in matmul.input if i in inits)
        for name, axis in ((weight_name, 1), (bias_name, 0)):
            arr = numpy_helper.to_array(inits[name])
            inits[name].CopyFrom(numpy_helper.from_array(np.take(arr, keep, axis=axis), name))
        out_vi = g.output[0]
        del out_vi.type.tensor_type.shape.dim[2:]
        out_vi.type.tensor_type.shape.dim.add().dim_value = len(keep)
        self.onnx = onnx.ModelProto()
        self.onnx.CopyFrom(src)
        # the torch twin trains on logits: no Softmax. onnx2torch needs every value's rank,
        # which shape inference loses in this graph: take shapes from one onnxruntime run
        del g.node[-1]
        del g.output[:]
        g.output.append(oh.make_empty_tensor_value_info(soft.input[0]))
        names = [o for n in g.node for o in n.output]
        probe = onnx.ModelProto()
        probe.CopyFrom(src)
        del probe.graph.output[:]
        probe.graph.output.extend(oh.make_empty_tensor_value_info(n) for n in names)
        sess = ort.InferenceSession(probe.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        vals = sess.run(None, {g.input[0].name: np.zeros((1, 3, REC_HEIGHT, 320), np.float32)})
        del g.value_info[:]
        for name, v in zip(names, vals, strict=True):
            g.value_info.append(oh.make_tensor_value_info(
                name, oh.np_dtype_to_tensor_dtype(v.dtype), list(v.shape)))
        self.net = convert(src)
        self._promote_buffers()
        self.links = self._link(inits)

    def _promote_buffers(self) -> None:
        """MatMul and layer-norm weights arrive as buffers; make them trainable parameters."""
        import torch

        holder = self.net.initializers
        for name, buf in list(holder.named_buffers(recurse=False)):
            if buf.is_floating_point() and buf.ndim >= 1 and buf.numel() >= 8:
                delattr(holder, name)
                holder.register_parameter(name, torch.nn.Parameter(buf.clone()))

    def _link(self, inits: dict[str, Any]) -> dict[str, Any]:
        """ONNX initializer name -> the torch parameter holding the same weights."""
        from onnx import numpy_helper

        by_shape: dict[tuple[int, ...], list[tuple[str, np.ndarray]]] = {}
        for name, t in inits.items():
            arr = numpy_helper.to_array(t)
            if arr.dtype == np.float32 and arr.size >= 2:
                by_shape.setdefault(arr.shape, []).append((name, arr))
        links: dict[str, Any] = {}
        for pname, p in self.net.named_parameters():
            val = p.detach().numpy()
            same = [n for n, arr in by_shape.get(val.shape, []) if np.array_equal(arr, val)]
            if len(same) != 1:
                raise SystemExit(f"cannot map {pname} {tuple(val.shape)} to one ONNX weight "
                                 f"({len(same)} candidates)")
            links[same[0]] = p
        return links

    def to_onnx(self, path: Path, card: dict[str, Any]) -> None:
        """The original graph with the trained weights, charset and card in its metadata."""
        import onnx
        from onnx import numpy_helper

        model = onnx.ModelProto()
        model.CopyFrom(self.onnx)
        for t in model.graph.initializer:
            if t.name in self.links:
                t.CopyFrom(numpy_helper.from_array(
                    self.links[t.name].detach().numpy().astype(np.float32), t.name))
        del model.metadata_props[:]
        for key, value in (("character", "\n".join(self.chars[1:-1])),
                           ("gate_edge_card", json.dumps(card, ensure_ascii=False))):
            prop = model.metadata_props.add()
            prop.key, prop.value = key, value
        onnx.save(model, str(path))


def freeze_backbone(net: Any, first_trained_conv: int) -> int:
    """Freeze the convolutions before `first_trained_conv` (PP-OCRv4: 0-32 are the LCNet
    backbone, the SVTR neck starts at 33). Returns the number of frozen tensors."""
    frozen = 0
    for name, p in net.named_parameters():
        parts = name.split("/")
        if len(parts) == 3 and parts[1] in ("Conv", "BatchNormalization"):
            idx = int(parts[2].split(".")[0])
            if (parts[1] == "Conv" and idx < first_trained_conv) or (
                    parts[1] == "BatchNormalization" and idx == 0 and first_trained_conv > 0):
                p.requires_grad_(False)
                frozen += 1
    return frozen


def freeze_batchnorm(net: Any) -> None:
    import torch

    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


# ---------------------------------------------------------------- the rows

def row_labels(text: str, rows: int, top: np.ndarray | None = None,
               read: Any = None) -> list[str]:
    """The text of each row of a plate; for two rows, the split the stock reading agrees with."""
    if rows == 1:
        return [text]
    if text[:1] > "9" or not text[:2].isdigit():  # not a VN two-row text
        return []
    i = 2
    while i < len(text) and not text[i].isdigit():
        i += 1
    splits = [k for k in (i, i + 1) if 4 <= len(text) - k <= 5 and k <= len(text)]
    if not splits:
        return []
    if len(splits) == 1 or read is None or top is None:
        head = vn_display_rows(text, 2)[0].replace("-", "")
        return [head, text[len(head):]]
    guess = read(top)
    k = min(splits, key=lambda k: (levenshtein(guess, text[:k]), k))
    return [text[:k], text[k:]]


def plate_rows(img: np.ndarray, rows: int) -> list[np.ndarray]:
    """The run-time geometry: rectified plate, cut into its rows, each 48 px high (BGR)."""
    plate = rectify(img)
    parts = split_rows(plate) if rows == 2 else [plate]
    out = []
    for p in parts:
        h, w = p.shape[:2]
        if h < 4 or w < 4:
            return []
        nw = min(MAX_WIDTH, max(16, math.ceil(REC_HEIGHT * w / h)))
        out.append(cv2.resize(p, (nw, REC_HEIGHT), interpolation=cv2.INTER_AREA
                              if h > REC_HEIGHT else cv2.INTER_LINEAR))
    return out


def build_rows(root: Path | None, *, synthetic: int, real_copies: int, seed: int,
               stock_read: Any, real_limit: int | None = None
               ) -> tuple[list[np.ndarray], list[str], dict[str, int]]:
    """Every training row (48 px high, BGR) and its text; real crops first, then synthetic."""
    rng = random.Random(seed)
    images: list[np.ndarray] = []
    texts: list[str] = []
    counts = {"real_rows": 0, "synthetic_rows": 0, "real_skipped": 0}
    for s in real_samples(root, real_limit):
        labels: list[str] = []
        for k in range(real_copies):
            img = s.image if k == 0 else degrade(s.image, rng, strength=0.5)
            parts = plate_rows(img, s.rows)
            if k == 0:  # the degraded copies keep the original's row split
                labels = row_labels(s.text, s.rows, parts[0] if parts else None, stock_read)
            if len(parts) != len(labels) or not labels:
                counts["real_skipped"] += 1
                continue
            images += parts
            texts += labels
            counts["real_rows"] += len(parts)
    for img, text, rows in synthetic_plates(rng, synthetic):
        parts = plate_rows(img, rows)
        labels = [text] if rows == 1 else \
            [r.replace("-", "").replace(".", "") for r in vn_display_rows(text, 2)]
        if len(parts) != len(labels):
            continue
        images += parts
        texts += labels
        counts["synthetic_rows"] += len(parts)
    return images, texts, counts


# ---------------------------------------------------------------- training

def train(net: Any, images: list[np.ndarray], texts: list[str], chars: list[str], *,
          epochs: int, batch: int, lr: float, seed: int, natural_share: float,
          monitor: int) -> dict[str, float]:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = random.Random(seed)
    index = {c: i for i, c in enumerate(chars)}
    order = list(range(len(images)))
    rng.shuffle(order)
    held, train_idx = order[:monitor], order[monitor:]
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(train_idx) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.1)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    t0 = time.monotonic()
    for epoch in range(epochs):
        net.train()
        freeze_batchnorm(net)
        # a share of the batches padded to their own width, the rest to PaddleOCR's 320 px
        rng.shuffle(train_idx)
        chunks = [train_idx[i:i + batch] for i in range(0, len(train_idx), batch)]
        total, n = 0.0, 0
        for chunk in chunks:
            pad = 64 if rng.random() < natural_share else 320
            x, widths = rec_batch([images[i] for i in chunk], pad)
            out = net(torch.from_numpy(x))  # (N, T, C)
            t_len = out.shape[1]
            logp = out.log_softmax(-1).permute(1, 0, 2)
            tg = [torch.tensor([index[c] for c in texts[i]]) for i in chunk]
            in_len = torch.tensor([max(1, min(t_len, math.ceil(w / x.shape[3] * t_len) + 1))
                                   for w in widths])
            loss = ctc(logp, torch.cat(tg), in_len, torch.tensor([len(t) for t in tg]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            total += float(loss) * len(chunk)
            n += len(chunk)
        acc = held_exact(net, images, texts, chars, held)
        log.info("epoch %d/%d: loss %.4f, held-out rows exact %.2f %% (%.0f s)", epoch + 1,
                 epochs, total / max(1, n), acc, time.monotonic() - t0)
    return {"train_s": round(time.monotonic() - t0), "held_rows_exact_pct": acc}


def plain_text(scores: np.ndarray, chars: list[str]) -> str:
    """Best-path read of (T, C) probabilities or logits, letters and digits only."""
    return "".join(ch for ch in greedy(scores, chars)[0] if ch.isalnum())


def held_exact(net: Any, images: list[np.ndarray], texts: list[str], chars: list[str],
               held: list[int]) -> float:
    import torch

    net.eval()
    ok = 0
    with torch.no_grad():
        for i in range(0, len(held), 32):
            chunk = held[i:i + 32]
            x, _ = rec_batch([images[j] for j in chunk], 320)
            out = net(torch.from_numpy(x)).numpy()
            ok += sum(plain_text(o, chars) == texts[j] for o, j in zip(out, chunk, strict=True))
    return round(100.0 * ok / max(1, len(held)), 2)


def train_rows(args: argparse.Namespace, net: Any, chars: list[str], root: Path | None
               ) -> dict[str, Any]:
    """Build the rows and train; what the card records about it."""
    if args.train_from_conv:
        log.info("froze %d backbone tensors", freeze_backbone(net, args.train_from_conv))
    stock = PlateRecognizer(threads=args.threads, model_path=rapidocr_rec_model())

    def stock_read(row: np.ndarray) -> str:
        return plain_text(stock.row_probs([row])[0], stock.charset)

    t0 = time.monotonic()
    images, texts, counts = build_rows(root, synthetic=args.synthetic,
                                       real_copies=args.real_copies, seed=args.seed,
                                       stock_read=stock_read, real_limit=args.real_limit)
    log.info("rows: %s (%.0f s)", counts, time.monotonic() - t0)
    stats = train(net, images, texts, chars, epochs=args.epochs, batch=args.batch, lr=args.lr,
                  seed=args.seed, natural_share=args.natural_share, monitor=args.monitor)
    return {"rows": counts, **stats, "lr": args.lr, "train_from_conv": args.train_from_conv}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="run folder (model, log)")
    ap.add_argument("--epochs", type=int, default=4,
                    help="0: only cut the output layer to the plate charset (the shipped model)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--synthetic", type=int, default=3000, help="synthetic plates drawn")
    ap.add_argument("--real-copies", type=int, default=3,
                    help="each real crop as is + N-1 degraded copies")
    ap.add_argument("--natural-share", type=float, default=0.5,
                    help="share of batches padded to their own width instead of 320 px")
    ap.add_argument("--train-from-conv", type=int, default=0,
                    help="freeze the convolutions before this one (33: backbone frozen, "
                         "neck and head trained)")
    ap.add_argument("--min-width", type=int, default=320,
                    help="narrowest padded row width gate-edge feeds the model (into its card)")
    ap.add_argument("--monitor", type=int, default=300, help="rows held out to watch progress")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real-limit", type=int, default=None,
                    help="at most N real crops per folder (smoke tests)")
    ap.add_argument("--install", action="store_true",
                    help=f"copy the model into edge/models/{PLATE_REC_MODEL.name}")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    root = data_root()
    if root is None:
        log.warning("../shared/data not found: fine-tuning on synthetic plates only")
    model = PlateModel(charset())
    net, chars = model.net, model.chars
    card: dict[str, Any] = {
        "base": "ch_PP-OCRv4_rec_infer.onnx (rapidocr-onnxruntime)",
        "command": "python -m training.finetune_ppocr " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "charset": "blank + 0-9 + A-Z + CN provinces + space", "min_width": args.min_width,
        "epochs": args.epochs, "seed": args.seed}
    if args.epochs > 0:
        card.update(train_rows(args, net, chars, root))
    path = args.out / PLATE_REC_MODEL.name
    path = args.out / PLATE_REC_MODEL.name
    net.eval()
    model.to_onnx(path, card)
    log.info("wrote %s (%.1f MB): %s", path, path.stat().st_size / 1e6, card)
    if args.install:
        PLATE_REC_MODEL.write_bytes(path.read_bytes())
        log.info("installed %s", PLATE_REC_MODEL)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
