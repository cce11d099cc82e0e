"""`gate-edge plates read --json`: one stable JSON line per image, a clear error per bad file."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from simulators.camera.artwork import render_vn_plate
from simulators.camera.scene import PlateSpec, TruckView, render
from tests.conftest import REPO

KEYS = {"file", "text", "confidence", "bbox", "grammar", "candidates", "ms"}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", "plates", "read", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=180)


@pytest.fixture
def crops_dir(tmp_path: Path) -> Path:
    d = tmp_path / "crops"
    d.mkdir()
    for text, rows in (("51F12345", 1), ("29C73804", 2)):
        rgb = render_vn_plate(text, rows, rng=random.Random(4))
        cv2.imwrite(str(d / f"{text}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 only the start of a jpeg")
    (d / "empty.png").write_bytes(b"")
    return d


def test_crops_give_one_json_line_each_and_errors_per_file(crops_dir: Path) -> None:
    proc = run_cli(str(crops_dir), "--json", "--crops")
    assert proc.returncode == 1, proc.stderr  # some files could not be read
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 4
    by_name = {Path(rec["file"]).name: rec for rec in lines}
    assert "truncated JPEG" in by_name["broken.jpg"]["error"]
    assert "empty file" in by_name["empty.png"]["error"]
    for text in ("51F12345", "29C73804"):
        rec = by_name[f"{text}.png"]
        assert rec.keys() >= KEYS
        assert rec["text"] == text
        assert rec["grammar"] in ("VN-1row", "VN-2row")
        assert rec["candidates"][0]["text"] == text
        assert rec["bbox"][:2] == [0, 0]


def test_full_scene_finds_and_reads_the_plate(tmp_path: Path) -> None:
    truck = TruckView(view="front", tractor_plate=PlateSpec("30H99887", "VN", 1, True))
    frame = render(truck, size=(1280, 720), progress=0.9, seed=11)
    path = tmp_path / "scene.jpg"
    cv2.imwrite(str(path), frame.image)
    proc = run_cli(str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec.keys() >= KEYS
    assert rec["text"] == "30H99887"
    x0, y0, x1, y1 = rec["bbox"]
    tx0, ty0, tx1, ty1 = frame.objects[0].box
    assert x0 < tx1 and tx0 < x1 and y0 < ty1 and ty0 < y1  # the box is on the plate


def test_nothing_to_read_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_cli(str(tmp_path), "--json")
    assert proc.returncode == 2
    assert "no images" in proc.stderr


@pytest.mark.parametrize("mode", ["own", "ppocr"])
def test_recognizer_option_keeps_the_json_keys(crops_dir: Path, mode: str) -> None:
    proc = run_cli(str(crops_dir / "29C73804.png"), "--json", "--crops", "--recognizer", mode)
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout)
    assert rec.keys() >= KEYS and rec["text"] == "29C73804"


def test_unknown_recognizer_is_a_usage_error(crops_dir: Path) -> None:
    proc = run_cli(str(crops_dir / "29C73804.png"), "--json", "--crops", "--recognizer", "best")
    assert proc.returncode == 2 and "recognizer must be" in proc.stderr
