"""``gate-edge plates read``: read plates from image files, one JSON line per image.

This is the interface accuracy evaluation runs against, so its output keys are stable:
``file, text, confidence, bbox, grammar, candidates, ms`` (plus ``rows``, ``raw`` and, for full
scenes, ``plates`` and ``containers`` with every object found). A file that is not a usable
image gives ``{"file": ..., "error": ...}`` and the run goes on.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from edge.plates.images import ImageError, expand_inputs, load_image
from edge.plates.ocr import OcrResult
from edge.plates.reader import FrameRead, PlateReader

app = typer.Typer(help="Plate and container-number reading.", no_args_is_help=True,
                  rich_markup_mode=None)


def _ocr_json(res: OcrResult) -> dict[str, Any]:
    return {
        "text": res.text or None,
        "confidence": res.confidence,
        "grammar": res.grammar,
        "rows": res.rows,
        "raw": res.raw,
        "char_confidence": list(res.char_conf),
        "candidates": [{"text": c.text, "confidence": c.confidence, "grammar": c.grammar}
                       for c in res.candidates],
    }


def _scene_json(reads: list[FrameRead]) -> dict[str, Any]:
    plates = [{**_ocr_json(r.plate), "bbox": list(r.box), "det_score": round(r.det_score, 4)}
              for r in reads if r.plate is not None]
    containers = [{"text": r.container.text, "confidence": r.container.confidence,
                   "check_digit_ok": r.container.check_digit_ok,
                   "repaired_from": r.container.repaired_from, "raw": r.container.raw,
                   "bbox": list(r.box), "det_score": round(r.det_score, 4)}
                  for r in reads if r.container is not None]
    readable = [p for p in plates if p["text"]]
    best = max(readable or plates, key=lambda p: (p["confidence"], p["det_score"]),
               default=None)
    head: dict[str, Any] = (
        {k: best[k] for k in ("text", "confidence", "bbox", "grammar", "candidates", "rows",
                              "raw")}
        if best else {"text": None, "confidence": 0.0, "bbox": None, "grammar": None,
                      "candidates": [], "rows": None, "raw": ""})
    return {**head, "plates": plates, "containers": containers}


def _have_detector(model: Path | None) -> bool:
    from edge.plates.detector import DEFAULT_MODEL

    return Path(model or DEFAULT_MODEL).is_file()


@app.command("read")
def read(
    inputs: list[Path] = typer.Argument(..., help="image files or folders of images"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line (stable keys)"),
    crops: bool = typer.Option(False, "--crops",
                               help="inputs are already-cropped plates (the detector only "
                                    "re-finds the plate in a loose crop)"),
    rows: int = typer.Option(0, "--rows", min=0, max=2,
                             help="force 1 or 2 text rows for --crops (0: decide per image)"),
    model: Path = typer.Option(None, "--model", help="detector ONNX (default: shipped model)"),
    threads: int = typer.Option(2, "--threads", min=1, help="onnxruntime threads"),
    recognizer: str = typer.Option(
        "vote", "--recognizer",
        help="plate OCR: vote (own model + PP-OCRv4, the default), ppocr, own or cascade"),
) -> None:
    """Read plates in IMAGES (full scenes, or plate crops with --crops).

    Example:  gate-edge plates read shots/ --json > reads.jsonl

    Exit status 1 when any file could not be read (each gets an "error" line).
    """
    files = expand_inputs(inputs)
    if not files:
        typer.echo("no images found in the given paths", err=True)
        raise typer.Exit(2)
    try:
        reader = PlateReader(detector_model=model, threads=threads,
                             with_detector=not crops or _have_detector(model),
                             recognizer=recognizer)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    failed = 0
    for path in files:
        t0 = time.perf_counter()
        try:
            img = load_image(path)
            if crops:
                res = reader.read_crop(img, rows=rows or None)
                h, w = img.shape[:2]
                out = {**_ocr_json(res), "bbox": [0, 0, w, h]}
            else:
                out = _scene_json(reader.read_frame(img))
        except ImageError as exc:
            failed += 1
            line = {"file": str(path), "error": str(exc)}
            typer.echo(json.dumps(line, ensure_ascii=False) if as_json else f"ERROR {exc}")
            continue
        ms = round((time.perf_counter() - t0) * 1000, 1)
        record = {"file": str(path), **out, "ms": ms}
        if as_json:
            typer.echo(json.dumps(record, ensure_ascii=False))
        else:
            conf = record["confidence"]
            typer.echo(f"{path}\t{record['text'] or '-'}\t{conf:.3f}\t"
                       f"{record['grammar'] or '-'}\t{ms} ms")
        sys.stdout.flush()
    if failed:
        raise typer.Exit(1)
