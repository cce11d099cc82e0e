"""The cameras config section: plug-ins by type, described fields, clear errors."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from edge.config.cameras import CameraConfig, ReaderConfig

adapter: TypeAdapter = TypeAdapter(CameraConfig)


@pytest.mark.parametrize(("raw", "kind"), [
    ({"name": "in1-front", "type": "http-mjpeg", "url": "http://10.0.0.21/mjpeg"},
     "MjpegCameraConfig"),
    ({"name": "in1-rear", "type": "rtsp", "url": "rtsp://10.0.0.22/s1", "role": "trailer"},
     "RtspCameraConfig"),
    ({"name": "replay", "type": "video-file", "path": "/var/lib/x.mp4", "loop": True},
     "VideoFileCameraConfig"),
    ({"name": "ftp", "type": "image-folder", "path": "/srv/ftp", "watch": True},
     "ImageFolderCameraConfig"),
    ({"name": "usb", "type": "device", "device": "/dev/video0", "width": 1920},
     "DeviceCameraConfig"),
])
def test_each_type_selects_its_plugin(raw: dict, kind: str) -> None:
    assert type(adapter.validate_python(raw)).__name__ == kind


def test_unknown_type_and_extra_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="type"):
        adapter.validate_python({"name": "x", "type": "carrier-pigeon"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        adapter.validate_python({"name": "x", "type": "rtsp", "url": "rtsp://h/s", "fps": 3})


def test_rates_must_be_consistent() -> None:
    with pytest.raises(ValidationError, match="idle_fps"):
        adapter.validate_python({"name": "x", "type": "rtsp", "url": "rtsp://h/s",
                                 "max_fps": 2, "idle_fps": 5})


def test_every_field_is_described() -> None:
    from edge.config import cameras

    for model in (cameras.MjpegCameraConfig, cameras.RtspCameraConfig,
                  cameras.VideoFileCameraConfig, cameras.ImageFolderCameraConfig,
                  cameras.DeviceCameraConfig, cameras.RegionOfInterest, ReaderConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
