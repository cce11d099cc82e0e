"""Per-frame latency of plate reading: decoded 1080p frame -> plate texts, 2 CPU threads.

    python benchmarks/bench_plate_latency.py [--frames 40]

Frames come from the camera simulator (front view: tractor plate; rear view: trailer plate and
container number), rendered and decoded before timing. Measured: detect + OCR of every object,
on the full frame and with a lane region of interest (lower 3/4 of the frame, centre 2/3 of the
width) as a camera config would set it; OCR time per plate crop; peak RSS. Ends with one JSON
line with the target (median <= 30 ms per frame).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.plates.reader import PlateReader, crop_box  # noqa: E402
from simulators.camera.scene import random_truck, render  # noqa: E402


def pctl(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    reader = PlateReader(threads=args.threads)
    rng = random.Random(4242)
    frames = []
    for i in range(args.frames):
        truck = random_truck(rng)
        f = render(truck, size=(1920, 1080), progress=rng.uniform(0.5, 1.0), seed=70_000 + i)
        _, jpg = cv2.imencode(".jpg", f.image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        frames.append((cv2.imdecode(jpg, cv2.IMREAD_COLOR), f.objects))
    roi = (320, 270, 1600, 1080)
    for img, _ in frames[:3]:  # warm-up: first runs allocate onnxruntime arenas
        reader.read_frame(img)
    results: dict[str, list[float]] = {"full": [], "roi": []}
    counts = []
    for img, _ in frames:
        for name, r in (("full", None), ("roi", roi)):
            t0 = time.perf_counter()
            reads = reader.read_frame(img, r, thorough=False)  # live mode, as the worker
            results[name].append((time.perf_counter() - t0) * 1000)
        counts.append(len(reads))
    det_ms = []
    for img, _ in frames:
        t0 = time.perf_counter()
        reader.detector.detect(img, roi)  # type: ignore[union-attr]
        det_ms.append((time.perf_counter() - t0) * 1000)
    ocr_ms: list[float] = []
    container_ms: list[float] = []
    for img, objects in frames:
        for o in objects:
            crop = crop_box(img, [int(v) for v in o.box])
            t0 = time.perf_counter()
            if o.cls == 0:
                reader.recognizer.read(crop, thorough=False)  # as the live worker does
                ocr_ms.append((time.perf_counter() - t0) * 1000)
            else:
                reader.read_container(crop, thorough=False)
                container_ms.append((time.perf_counter() - t0) * 1000)
    x = np.zeros((1, 3, 48, 320), np.float32)
    t0 = time.perf_counter()
    for _ in range(20):
        reader.recognizer._sess.run(None, {reader.recognizer._input: x})
    bare_ms = (time.perf_counter() - t0) / 20 * 1000
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.frames} frames 1920x1080, {args.threads} threads, "
          f"{statistics.mean(counts):.1f} objects read per frame")
    for name in ("full", "roi"):
        v = results[name]
        print(f"  {name:4s} frame: median {pctl(v, 50)} ms  p95 {pctl(v, 95)} ms")
    print(f"  detector alone (ROI): median {pctl(det_ms, 50)} ms")
    print(f"  OCR per plate crop: median {pctl(ocr_ms, 50)} ms  p95 {pctl(ocr_ms, 95)} ms")
    print(f"  OCR per container-number crop: median {pctl(container_ms, 50)} ms")
    print(f"  PP-OCRv4 network alone, one 48x320 line: {bare_ms:.1f} ms")
    load = os.getloadavg()[0]
    print(f"  load average now {load:.1f} on {os.cpu_count()} cores (shared machine)")
    print(f"  peak RSS {rss_mb:.0f} MiB")
    print(json.dumps({
        "bench": "plate_latency", "median_ms": pctl(results["roi"], 50),
        "p95_ms": pctl(results["roi"], 95), "full_frame_median_ms": pctl(results["full"], 50),
        "full_frame_p95_ms": pctl(results["full"], 95), "detector_median_ms": pctl(det_ms, 50),
        "ocr_crop_median_ms": pctl(ocr_ms, 50), "ocr_crop_p95_ms": pctl(ocr_ms, 95),
        "container_crop_median_ms": pctl(container_ms, 50), "rec_network_ms": round(bare_ms, 1),
        "load_avg": round(load, 1), "peak_rss_mib": round(rss_mb),
        "threads": args.threads, "target_median_ms": 30}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
