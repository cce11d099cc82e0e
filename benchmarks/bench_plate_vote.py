"""What the camera's multi-frame vote makes final for whole simulated passes of one truck.

    python benchmarks/bench_plate_vote.py [--passes 20] [--frames 60] [--plate 29R04567]

A pass is what the daemon test rig's camera serves for one truck (12 s at 5 fps): rear frames
(1280 x 720, JPEG quality 85) of a truck whose two-row yellow trailer plate and container number are
drawn by the camera simulator, driving in from far away to the stop line, in the five
conditions in turn, read by the same ``LiveReader`` (detector, recognizer vote, multi-frame
vote) the camera worker runs with the default reader config. Counted per pass: the first final
plate read (right and sure, right and unsure, wrong), any wrong final read emitted at all,
and how many frames in the first final read came. A wrong final read is what sends a cleared
truck to an officer (TRAILER_MISMATCH) or, worse, matches another truck; the target is none.
Ends with one JSON line of the headline figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.config.cameras import ReaderConfig  # noqa: E402
from edge.plates.live import LiveReader  # noqa: E402
from edge.plates.reader import PlateReader  # noqa: E402
from simulators.camera.scene import PlateSpec, TruckView, render  # noqa: E402

CONDITIONS = ("daylight", "dusk", "rain", "glare", "motion_blur")
SURE = 0.80  # policy.min_plate_confidence's default: below it the matcher refers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passes", type=int, default=20, help="trucks driven through (default 20)")
    ap.add_argument("--frames", type=int, default=60, help="frames per pass (default 60: 12 s "
                                                           "at 5 fps, as the rig's camera)")
    ap.add_argument("--plate", default="29R04567", help="the trailer plate (two-row VN)")
    ap.add_argument("--container", default="TGHU7654320", help="the container number")
    args = ap.parse_args()

    rc = ReaderConfig(threads=1)
    reader = PlateReader(threads=1, fast_detector=rc.fast_detector, recognizer=rc.recognizer,
                         cascade_below=rc.cascade_below)
    first = Counter[str]()
    wrong_passes = 0
    wrong_texts = Counter[str]()
    first_frames: list[int] = []
    container_right = 0
    t0 = time.perf_counter()
    for k in range(args.passes):
        condition = CONDITIONS[k % len(CONDITIONS)]
        truck = TruckView(view="rear", trailer_plate=PlateSpec(args.plate, "VN", 2, True),
                          containers=(args.container,), condition=condition)
        live = LiveReader(reader, rc)
        plates: list[tuple[int, str, float]] = []
        containers: list[str] = []
        approach = args.frames / 1.3  # the camera simulator's default approach_s
        for f in range(args.frames):
            image = render(truck, size=(1280, 720), progress=min(1.0, f / approach),
                           seed=1000 * k + f).image
            ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
            assert ok
            frame = cv2.imdecode(jpg, cv2.IMREAD_COLOR)
            for kind, res in live.process(frame, f * 0.2):
                if kind == "plate":
                    plates.append((f, res.text, res.confidence))
                else:
                    containers.append(res.text)
        if not plates:
            first["none"] += 1
        else:
            f0, text, conf = plates[0]
            first_frames.append(f0)
            first["right_sure" if text == args.plate and conf >= SURE
                  else "right_unsure" if text == args.plate else "wrong"] += 1
        wrong = [t for _, t, _ in plates if t != args.plate]
        wrong_passes += bool(wrong)
        wrong_texts.update(wrong)
        container_right += containers[:1] == [args.container]
        print(f"pass {k + 1:3d} {condition:<11} plates {plates} containers {containers}",
              flush=True)
    seconds = time.perf_counter() - t0
    n = args.passes
    print(f"\n{n} passes of {args.frames} frames in {seconds:.0f} s")
    print(f"first final plate read: right and sure {first['right_sure']}, right but unsure "
          f"{first['right_unsure']}, wrong {first['wrong']}, none {first['none']}")
    print(f"passes with any wrong final plate read: {wrong_passes} ({dict(wrong_texts)})")
    print(f"container number right first: {container_right} of {n}")
    first_frames.sort()
    median = first_frames[len(first_frames) // 2] if first_frames else None
    print(json.dumps({
        "bench": "plate_vote", "passes": n, "plate": args.plate,
        "first_right_sure": first["right_sure"], "first_right_unsure": first["right_unsure"],
        "first_wrong": first["wrong"], "passes_with_wrong_final": wrong_passes,
        "target_passes_with_wrong_final": 0, "container_right": container_right,
        "first_final_frame_median": median,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
