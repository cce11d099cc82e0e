"""``cameras``: plate and container cameras, each a plug-in selected by ``type``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edge.config.types import Section


class _Camera(Section):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="camera id")
    role: Literal["tractor", "trailer", "container"] = Field(
        "tractor", description="what this camera reads: tractor plate, trailer plate, containers")
    max_fps: float = Field(10.0, gt=0, le=60, description="frame-rate cap for decoding")


class MjpegCameraConfig(_Camera):
    """An HTTP MJPEG stream (most IP cameras, and gate-sim camera)."""

    type: Literal["http-mjpeg"] = Field(..., description="HTTP multipart MJPEG stream")
    url: str = Field(..., description="stream URL, e.g. http://10.0.0.21/mjpeg")


class RtspCameraConfig(_Camera):
    """An RTSP stream decoded by OpenCV/FFmpeg."""

    type: Literal["rtsp"] = Field(..., description="RTSP stream")
    url: str = Field(..., description="rtsp://user@host/stream (password from credentials)")


CameraConfig = Annotated[MjpegCameraConfig | RtspCameraConfig, Field(discriminator="type")]
