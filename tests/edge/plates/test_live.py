"""Live loop: once a truck's plate is final, its box is not read again in every frame."""

from __future__ import annotations

from edge.config.cameras import ReaderConfig
from edge.plates.live import LiveReader
from edge.plates.reader import PlateReader
from simulators.camera.scene import PlateSpec, TruckView, render


def _drive(reader: PlateReader, reread_every: int) -> tuple[list[tuple[str, str]], LiveReader]:
    truck = TruckView(view="front", tractor_plate=PlateSpec("51C12345", "VN", 1, False),
                      condition="daylight")
    live = LiveReader(reader, ReaderConfig(vote_frames=2, vote_confidence=0.999,
                                           settled_reread_every=reread_every))
    finals = []
    for i in range(8):  # 10 fps, the truck drives towards the camera
        frame = render(truck, size=(1280, 720), progress=0.6 + 0.04 * i, seed=300 + i)
        finals += [(kind, r.text) for kind, r in live.process(frame.image, 0.1 * i)]
    return finals, live


def test_settled_plate_is_not_read_in_every_frame() -> None:
    reader = PlateReader()
    finals, live = _drive(reader, reread_every=3)
    assert finals == [("plate", "51C12345")]
    assert live.stats.frames == 8
    assert live.stats.skipped >= 3  # frames after the vote mostly skip OCR ...
    assert live.stats.read >= 3  # ... but every 3rd is read again

    finals_all, live_all = _drive(reader, reread_every=0)
    assert finals_all == finals
    assert live_all.stats.skipped == 0 and live_all.stats.read == 8
