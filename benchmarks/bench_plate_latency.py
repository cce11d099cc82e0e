"""Per-frame latency of plate reading: decoded 1080p frame -> plate texts, 2 CPU threads.

    python benchmarks/bench_plate_latency.py [--frames 40] [--trucks 6]

Frames come from the camera simulator (front view: tractor plate; rear view: trailer plate and
container number), rendered and JPEG-decoded before timing. Measured:
- single frames, every object read (the worst case: a frame where every plate is new), on the
  full frame (standard 320 px detector) and on a lane region of interest (lower 3/4 of the
  frame, centre 2/3 of the width) with the fast 256 px int8 detector (and, for comparison,
  the standard one);
- live sequences: trucks driving through the ROI at 10 fps, read by the same `LiveReader` the
  camera worker runs (OCR only until a vehicle's text is final, then every Nth frame);
- where the time goes: detector, crop geometry (rectify, row split), recognition network,
  grammar decoding; per-crop OCR time; peak RSS; process CPU time per frame (less sensitive to
  other jobs on a shared machine than wall time).
Ends with one JSON line with the target (median <= 30 ms per frame).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.config.cameras import ReaderConfig  # noqa: E402
from edge.plates.live import LiveReader  # noqa: E402
from edge.plates.reader import PlateReader, crop_box  # noqa: E402
from edge.plates.rectify import rectify, split_rows  # noqa: E402
from simulators.camera.scene import random_truck, render  # noqa: E402

ROI = (320, 270, 1600, 1080)


def pctl(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else 0.0


def decoded(image: np.ndarray) -> np.ndarray:
    _, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    out = cv2.imdecode(jpg, cv2.IMREAD_COLOR)
    assert out is not None
    return out


def timed(fn, *args, **kw) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Wall and process-CPU milliseconds of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn(*args, **kw)
    return (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--trucks", type=int, default=6, help="live sequences of 15 frames each")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--modes", default="ppocr,own,cascade",
                    help="recognizer modes timed per crop and per ROI frame (comma-separated)")
    args = ap.parse_args()
    cv2.setNumThreads(args.threads)
    reader = PlateReader(threads=args.threads)  # fast detector on a ROI (the default)
    standard = PlateReader(threads=args.threads, fast_detector="never")  # shares the recognizer
    rng = random.Random(4242)
    frames = []
    for i in range(args.frames):
        truck = random_truck(rng)
        f = render(truck, size=(1920, 1080), progress=rng.uniform(0.5, 1.0), seed=70_000 + i)
        frames.append((decoded(f.image), f.objects))
    for img, _ in frames[:3]:  # warm-up: first runs allocate onnxruntime arenas
        reader.read_frame(img, ROI)
        standard.read_frame(img, ROI)
    wall: dict[str, list[float]] = {"full": [], "roi": [], "roi_standard": []}
    cpu: dict[str, list[float]] = {k: [] for k in wall}
    counts = []
    for img, _ in frames:
        for name, rdr, r in (("full", reader, None), ("roi", reader, ROI),
                             ("roi_standard", standard, ROI)):
            w, c = timed(rdr.read_frame, img, r, thorough=False)  # live mode: one pass
            wall[name].append(w)
            cpu[name].append(c)
        counts.append(len(reader.read_frame(img, ROI, thorough=False)))
    det_ms: dict[str, list[float]] = {"fast": [], "standard": []}
    for img, _ in frames:
        det_ms["fast"].append(timed(reader.detector_for(ROI).detect, img, ROI)[0])
        det_ms["standard"].append(timed(standard.detector_for(ROI).detect, img, ROI)[0])
    ocr_ms: list[float] = []
    geom_ms: list[float] = []
    net_ms: list[float] = []
    decode_ms: list[float] = []
    container_ms: list[float] = []
    for img, objects in frames:
        for o in objects:
            crop = crop_box(img, [int(v) for v in o.box])
            if o.cls != 0:
                container_ms.append(timed(reader.read_container, crop, thorough=False)[0])
                continue
            t0 = time.perf_counter()
            res = reader.recognizer.read(crop, thorough=False)  # as the live worker does
            ocr_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            plate = rectify(crop)
            if res.rows == 2:
                split_rows(plate)
            geom_ms.append((time.perf_counter() - t0) * 1000)
            net_ms.append(res.extras.get("net_ms", 0.0))
            decode_ms.append(max(0.0, res.ms - geom_ms[-1] - net_ms[-1]))
    # live sequences: trucks driving through the lane ROI, the camera worker's own loop
    live_ms: list[float] = []
    live_cpu: list[float] = []
    read = skipped = 0
    trng = random.Random(5151)
    for k in range(args.trucks):
        truck = random_truck(trng)
        live = LiveReader(reader, ReaderConfig(), ROI)
        for i in range(15):
            f = render(truck, size=(1920, 1080), progress=0.45 + 0.035 * i, seed=80_000 + 100 * k + i)
            img = decoded(f.image)
            w, c = timed(live.process, img, 0.1 * i)
            live_ms.append(w)
            live_cpu.append(c)
        read += live.stats.read
        skipped += live.stats.skipped
    # per recognizer mode (edge/plates/ensemble.py): OCR per plate crop and single ROI frames
    mode_crop: dict[str, list[float]] = {}
    mode_crop_cpu: dict[str, list[float]] = {}
    mode_frame: dict[str, list[float]] = {}
    mode_frame_cpu: dict[str, list[float]] = {}
    for mode in [m for m in args.modes.split(",") if m]:
        other = PlateReader(threads=args.threads, recognizer=mode)
        for img, _ in frames[:2]:
            other.read_frame(img, ROI, thorough=False)
        mode_crop[mode], mode_crop_cpu[mode] = [], []
        mode_frame[mode], mode_frame_cpu[mode] = [], []
        for img, objects in frames:
            w, c = timed(other.read_frame, img, ROI, thorough=False)
            mode_frame[mode].append(w)
            mode_frame_cpu[mode].append(c)
            for o in objects:
                if o.cls == 0:
                    crop = crop_box(img, [int(v) for v in o.box])
                    w, c = timed(other.recognizer.read, crop, thorough=False)
                    mode_crop[mode].append(w)
                    mode_crop_cpu[mode].append(c)
    ppocr = reader.recognizer.ppocr
    x = np.zeros((1, 3, 48, 320), np.float32)
    t0 = time.perf_counter()
    for _ in range(20):
        ppocr._sess.run(None, {ppocr._input: x})
    bare_ms = (time.perf_counter() - t0) / 20 * 1000
    own_ms = 0.0
    own = reader.recognizer.own or (PlateReader(threads=args.threads, recognizer="own")
                                    .recognizer.own)
    if own is not None and own.line_card is not None:
        xo = np.zeros((1, 1, own.line_card.height, own.line_card.width), np.float32)
        t0 = time.perf_counter()
        for _ in range(20):
            own._sess.run(None, {own._input: xo})
        own_ms = (time.perf_counter() - t0) / 20 * 1000
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = os.getloadavg()[0]
    print(f"{args.frames} frames 1920x1080, {args.threads} threads, "
          f"{np.mean(counts):.1f} objects read per ROI frame; load average {load:.1f} on "
          f"{os.cpu_count()} cores (shared machine)")
    for name, label in (("full", "full frame, standard detector"),
                        ("roi", "ROI, fast detector"), ("roi_standard", "ROI, standard detector")):
        print(f"  {label:31s}: median {pctl(wall[name], 50):6.1f} ms  p95 "
              f"{pctl(wall[name], 95):6.1f} ms   CPU {pctl(cpu[name], 50):6.1f} ms")
    print(f"  live sequences ({args.trucks} trucks x 15 frames, ROI): median "
          f"{pctl(live_ms, 50)} ms  p95 {pctl(live_ms, 95)} ms  CPU {pctl(live_cpu, 50)} ms; "
          f"objects read {read}, left unread (already final) {skipped}")
    print(f"  detector alone (ROI): fast {pctl(det_ms['fast'], 50)} ms, standard "
          f"{pctl(det_ms['standard'], 50)} ms")
    print(f"  OCR per plate crop: median {pctl(ocr_ms, 50)} ms  p95 {pctl(ocr_ms, 95)} ms = "
          f"geometry {pctl(geom_ms, 50)} + network {pctl(net_ms, 50)} + decoding "
          f"{pctl(decode_ms, 50)} ms (medians)")
    print(f"  OCR per container-number crop: median {pctl(container_ms, 50)} ms")
    print(f"  PP-OCRv4 network alone, one 48x320 line: {bare_ms:.1f} ms; own model, one "
          f"line: {own_ms:.1f} ms")
    for mode in mode_crop:
        print(f"  recognizer {mode:8s}: OCR per plate crop median {pctl(mode_crop[mode], 50)} ms"
              f" p95 {pctl(mode_crop[mode], 95)} ms (CPU {pctl(mode_crop_cpu[mode], 50)} ms);"
              f" ROI frame median {pctl(mode_frame[mode], 50)} ms (CPU "
              f"{pctl(mode_frame_cpu[mode], 50)} ms)")
    print(f"  peak RSS {rss_mb:.0f} MiB")
    print(json.dumps({
        "bench": "plate_latency", "median_ms": pctl(wall["roi"], 50),
        "p95_ms": pctl(wall["roi"], 95), "cpu_median_ms": pctl(cpu["roi"], 50),
        "live_median_ms": pctl(live_ms, 50), "live_p95_ms": pctl(live_ms, 95),
        "roi_standard_detector_median_ms": pctl(wall["roi_standard"], 50),
        "full_frame_median_ms": pctl(wall["full"], 50),
        "full_frame_p95_ms": pctl(wall["full"], 95),
        "detector_median_ms": pctl(det_ms["fast"], 50),
        "standard_detector_median_ms": pctl(det_ms["standard"], 50),
        "ocr_crop_median_ms": pctl(ocr_ms, 50), "ocr_crop_p95_ms": pctl(ocr_ms, 95),
        "ocr_geometry_ms": pctl(geom_ms, 50), "ocr_network_ms": pctl(net_ms, 50),
        "ocr_decoding_ms": pctl(decode_ms, 50),
        "container_crop_median_ms": pctl(container_ms, 50), "rec_network_ms": round(bare_ms, 1),
        "own_rec_network_ms": round(own_ms, 1), "recognizer": reader.recognizer.mode,
        **{f"ocr_crop_{m}_median_ms": pctl(v, 50) for m, v in mode_crop.items()},
        **{f"ocr_crop_{m}_cpu_ms": pctl(v, 50) for m, v in mode_crop_cpu.items()},
        **{f"roi_{m}_median_ms": pctl(v, 50) for m, v in mode_frame.items()},
        **{f"roi_{m}_cpu_ms": pctl(v, 50) for m, v in mode_frame_cpu.items()},
        "load_avg": round(load, 1), "peak_rss_mib": round(rss_mb),
        "threads": args.threads, "target_median_ms": 30}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
