"""The fast detector (256 px, int8) on a camera's region of interest, and settled-box skipping."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import pytest

from edge.plates.detector import FAST_MODEL, PlateDetector
from edge.plates.reader import PlateReader
from edge.plates.voting import box_iou
from simulators.camera.scene import random_truck, render

ROI = (320, 270, 1600, 1080)

pytestmark = pytest.mark.skipif(not FAST_MODEL.is_file(), reason="fast detector not shipped")


@pytest.fixture(scope="module")
def scene_reader() -> PlateReader:
    return PlateReader()


def _frames(n: int, seed: int) -> list:
    rng = random.Random(seed)
    return [render(random_truck(rng), size=(1920, 1080), progress=rng.uniform(0.6, 0.9),
                   seed=seed + i) for i in range(n)]


def test_fast_detector_is_used_on_a_roi_only(scene_reader: PlateReader) -> None:
    assert scene_reader.detector_for(ROI).imgsz == 256
    assert scene_reader.detector_for(None) is scene_reader.detector
    assert scene_reader.detector is not None and scene_reader.detector.imgsz == 320


def test_fast_detector_on_the_roi_finds_what_the_standard_one_does(
        scene_reader: PlateReader) -> None:
    standard, fast = scene_reader.detector, scene_reader.detector_for(ROI)
    assert standard is not None
    found = {"standard": [0, 0], "fast": [0, 0]}  # plates, container numbers
    total = [0, 0]
    for frame in _frames(10, 880_001):
        got = {"standard": standard.detect(frame.image, ROI), "fast": fast.detect(frame.image, ROI)}
        for obj in frame.objects:
            x0, y0, x1, y1 = obj.box
            if x0 < ROI[0] or y0 < ROI[1] or x1 > ROI[2] or y1 > ROI[3]:
                continue  # outside the lane's region of interest
            total[obj.cls] += 1
            box = (int(x0), int(y0), int(x1), int(y1))
            for name, dets in got.items():
                found[name][obj.cls] += any(d.cls == obj.cls and box_iou(d.box, box) >= 0.3
                                            for d in dets)
    assert total[0] >= 8
    assert found["fast"][0] == total[0]  # every plate
    assert sum(found["fast"]) >= sum(found["standard"])


def test_fast_detector_recall_on_held_out_scenes(shared_data: Path) -> None:
    from training.dataset import is_val_scene

    det = PlateDetector(FAST_MODEL)
    paths = [p for p in sorted((shared_data / "vn_scenes" / "images").glob("*.jpg"))
             if is_val_scene(p.name)][:25]
    hits = 0
    for p in paths:
        img = cv2.imread(str(p))
        assert img is not None, p
        h, w = img.shape[:2]
        line = (shared_data / "vn_scenes" / "labels" / f"{p.stem}.txt").read_text().split()
        cx, cy, bw, bh = (float(v) for v in line[1:5])
        truth = (int((cx - bw / 2) * w), int((cy - bh / 2) * h), int((cx + bw / 2) * w),
                 int((cy + bh / 2) * h))
        hits += any(d.label == "plate" and box_iou(d.box, truth) >= 0.5 for d in det.detect(img))
    assert hits == len(paths)


def test_skipped_boxes_are_not_read(scene_reader: PlateReader) -> None:
    frame = _frames(1, 880_101)[0]
    read = scene_reader.read_frame(frame.image, ROI, thorough=False)
    assert read and all(not r.skipped for r in read)
    assert all((r.plate or r.container) is not None for r in read)
    skipped = scene_reader.read_frame(frame.image, ROI, thorough=False, skip=lambda d: True)
    assert [r.box for r in skipped] == [r.box for r in read]
    assert all(r.skipped and r.plate is None and r.container is None for r in skipped)
