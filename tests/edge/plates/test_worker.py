"""A camera worker process reads a folder 'camera' and sends only voted reads over its queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
from pydantic import TypeAdapter

from edge.config.cameras import CameraConfig, ReaderConfig
from edge.domain.model import ContainerRead, PlateRead
from edge.plates.worker import CameraWorker
from simulators.camera.scene import PlateSpec, TruckView, render


def test_worker_votes_plate_and_container_from_frames(tmp_path: Path) -> None:
    truck = TruckView(view="rear", trailer_plate=PlateSpec("29R04567", "VN", 2, True),
                      containers=("MSKU1234565",), condition="daylight")
    for i in range(4):
        frame = render(truck, size=(1280, 720), progress=0.75 + 0.05 * i, seed=100 + i)
        cv2.imwrite(str(tmp_path / f"f{i}.jpg"), frame.image)
    (tmp_path / "f9.jpg").write_bytes(b"broken")  # a corrupt frame is skipped, not fatal
    cam = TypeAdapter(CameraConfig).validate_python(
        {"name": "in1-rear", "type": "image-folder", "path": str(tmp_path), "role": "trailer",
         "idle_fps": 60, "max_fps": 60})
    worker = CameraWorker(cam, ReaderConfig(vote_frames=2, vote_confidence=0.999), lane="in1")
    worker.start()
    got: list[tuple[str, dict, bytes | None]] = []

    async def collect() -> None:
        while True:
            item = await worker.next_read(timeout=120)
            assert item is not None, "worker sent nothing"
            got.append(item)
            if item[0] == "stopped":
                return

    try:
        asyncio.run(collect())
    finally:
        worker.stop()
    assert not worker.process.is_alive()
    plates = [PlateRead.model_validate(p) for k, p, _ in got if k == "plate"]
    containers = [ContainerRead.model_validate(p) for k, p, _ in got if k == "container"]
    assert [p.text for p in plates] == ["29R04567"]
    assert plates[0].role == "trailer" and plates[0].lane == "in1" and plates[0].frames >= 2
    assert [c.text for c in containers] == ["MSKU1234565"]
    evidence = next(e for k, _, e in got if k == "plate")
    assert evidence is not None and evidence[:2] == b"\xff\xd8"  # JPEG crop kept as evidence
    stats = got[-1][1]
    assert stats["frames"] == 4
