"""The camera simulator over real HTTP: MJPEG that OpenCV reads, truck commands, bad input.

The plate text reaches the reader only through the JPEG pixels of the stream.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import cv2
import pytest

from edge.domain import iso6346
from simulators.camera.scene import (
    CONDITIONS,
    TruckView,
    iso6346_check_digit,
    random_container,
    random_truck,
    render,
)
from simulators.camera.server import CameraServer


def post(url: str, body: object) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def wait_for(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_check_digits_agree_with_the_foundation() -> None:
    import random

    rng = random.Random(3)
    for _ in range(50):
        code = random_container(rng)
        assert iso6346.is_valid(code)
        assert int(iso6346_check_digit(code[:10])) == iso6346.check_digit(code[:10])


@pytest.mark.parametrize("condition", CONDITIONS)
def test_every_condition_renders_labelled_plates(condition: str) -> None:
    import random
    from dataclasses import replace

    truck = replace(random_truck(random.Random(5), view="rear"), condition=condition)
    frame = render(truck, size=(960, 540), progress=0.8, seed=1)
    assert frame.image.shape == (540, 960, 3)
    kinds = sorted(o.cls for o in frame.objects)
    assert kinds == [0, 1]  # trailer plate and container number
    for o in frame.objects:
        x0, y0, x1, y1 = o.box
        assert 0 <= x0 < x1 <= 960 and 0 <= y0 < y1 <= 540


def test_stream_serves_mjpeg_that_opencv_decodes(camera_server: CameraServer) -> None:
    cap = cv2.VideoCapture(f"{camera_server.url}/front.mjpg")
    try:
        assert cap.isOpened()
        ok, frame = cap.read()
        assert ok and frame.shape == (720, 1280, 3)
    finally:
        cap.release()


def test_truck_command_state_and_reading_from_pixels(camera_server: CameraServer) -> None:
    """gate-edge's reader, fed only the MJPEG stream, votes the plates the scenario set."""
    from edge.plates.reader import PlateReader
    from edge.plates.voting import Observation, PlateVoter

    status, body = post(f"{camera_server.url}/trucks", {
        "tractor_plate": "51C67890", "trailer_plate": "51R01234",
        "containers": ["MSKU1234565"], "condition": "daylight", "duration_s": 4})
    assert status == 202 and body == {"queued": 1}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = get_json(f"{camera_server.url}/state")
        if state.get("truck") and state["truck"]["progress"] > 0.4:
            break
        time.sleep(0.1)
    assert state["truck"]["tractor_plate"] == "51C67890"
    reader = PlateReader()
    finals: dict[str, str] = {}
    containers: set[str] = set()
    for view in ("front", "rear"):
        voter = PlateVoter(frames=2, confidence=0.99)
        cap = cv2.VideoCapture(f"{camera_server.url}/{view}.mjpg")
        try:
            for _ in range(6):
                ok, frame = cap.read()
                assert ok
                for r in reader.read_frame(frame):
                    if r.plate is not None and r.plate.text:
                        v = voter.add(Observation(r.plate.text, r.plate.confidence,
                                                  time.monotonic(), r.plate.grammar, r.box))
                        if v is not None:
                            finals[view] = v.text
                    if r.container is not None and r.container.check_digit_ok:
                        containers.add(r.container.text)
                if view in finals:
                    break
        finally:
            cap.release()
    assert finals == {"front": "51C67890", "rear": "51R01234"}
    assert containers == {"MSKU1234565"}


def test_bad_truck_is_refused_with_reason(camera_server: CameraServer) -> None:
    status, body = post(f"{camera_server.url}/trucks", {"tractor_plate": "51C1", "colour": 1})
    assert status == 400 and "unknown truck keys" in body["error"]
    status, body = post(f"{camera_server.url}/trucks", {"condition": "snowstorm"})
    assert status == 400 and "snowstorm" in body["error"]


def test_clear_empties_the_lane(camera_server: CameraServer) -> None:
    post(f"{camera_server.url}/trucks", {"tractor_plate": "51C67890", "duration_s": 30})
    assert wait_for(lambda: "truck" in get_json(f"{camera_server.url}/state"))
    post(f"{camera_server.url}/clear", {})
    assert wait_for(lambda: "truck" not in get_json(f"{camera_server.url}/state"))


def test_empty_lane_renders_without_plates() -> None:
    frame = render(TruckView(), size=(640, 360), empty=True)
    assert frame.objects == []
