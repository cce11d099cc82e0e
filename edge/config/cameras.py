"""``cameras``: plate and container cameras, each a plug-in selected by ``type``.

Every source is opened through OpenCV (FFmpeg underneath); adding a kind of camera means adding
one config class here and one source class in ``edge/plates/sources.py``. Thresholds of the
reader (detector, OCR, multi-frame vote) live in ``ReaderConfig``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge.config.types import Section


class RegionOfInterest(Section):
    """Part of the frame where the lane's vehicles appear; detection runs on this crop only."""

    x: int = Field(..., ge=0, description="left edge in pixels of the decoded frame")
    y: int = Field(..., ge=0, description="top edge in pixels")
    width: int = Field(..., gt=16, description="width in pixels")
    height: int = Field(..., gt=16, description="height in pixels")

    def box(self) -> tuple[int, int, int, int]:
        """As (x0, y0, x1, y1)."""
        return (self.x, self.y, self.x + self.width, self.y + self.height)


class _Camera(Section):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", description="camera id")
    role: Literal["tractor", "trailer", "container"] = Field(
        "tractor", description="what this camera reads: tractor plate, trailer plate, containers")
    max_fps: float = Field(10.0, gt=0, le=60, description="frame-rate cap for decoding")
    idle_fps: float = Field(
        2.0, gt=0, le=60,
        description="frame rate while the lane's entry loop is free; max_fps applies while a "
                    "vehicle occupies it (capture is boosted, not only triggered)")
    roi: RegionOfInterest | None = Field(
        None, description="crop of the frame to run detection on (saves time on wide views)")
    reconnect_min: float = Field(0.5, gt=0, le=60,
                                 description="first wait in seconds before reconnecting")
    reconnect_max: float = Field(30.0, gt=0, le=600,
                                 description="longest wait in seconds between reconnect attempts "
                                             "(the wait doubles after each failure)")

    @model_validator(mode="after")
    def _rates(self) -> _Camera:
        if self.idle_fps > self.max_fps:
            raise ValueError("idle_fps must not exceed max_fps")
        if self.reconnect_min > self.reconnect_max:
            raise ValueError("reconnect_min must not exceed reconnect_max")
        return self


class MjpegCameraConfig(_Camera):
    """An HTTP MJPEG stream (most IP cameras, and gate-sim camera)."""

    type: Literal["http-mjpeg"] = Field(..., description="HTTP multipart MJPEG stream")
    url: str = Field(..., pattern=r"^https?://",
                     description="stream URL, e.g. http://10.0.0.21/mjpeg")


class RtspCameraConfig(_Camera):
    """An RTSP stream decoded by OpenCV/FFmpeg."""

    type: Literal["rtsp"] = Field(..., description="RTSP stream")
    url: str = Field(..., pattern=r"^rtsps?://",
                     description="rtsp://user@host/stream (password from credentials)")
    tcp: bool = Field(True, description="RTSP over TCP (robust on lossy links) instead of UDP")


class VideoFileCameraConfig(_Camera):
    """A recorded video, played at most at max_fps; for replaying incidents and tests."""

    type: Literal["video-file"] = Field(..., description="a video file read by OpenCV")
    path: str = Field(..., description="path of the video file")
    loop: bool = Field(False, description="start again at the end instead of stopping")


class ImageFolderCameraConfig(_Camera):
    """A folder of still images in name order, as some trigger cameras drop them by FTP."""

    type: Literal["image-folder"] = Field(..., description="JPEG/PNG files in a folder")
    path: str = Field(..., description="folder to read images from")
    pattern: str = Field("*.jpg", description="glob of the files to read")
    watch: bool = Field(False, description="keep polling the folder for new files")


class DeviceCameraConfig(_Camera):
    """A local capture device (USB / V4L2)."""

    type: Literal["device"] = Field(..., description="local camera, e.g. /dev/video0")
    device: int | str = Field(0, description="device index or path such as /dev/video0")
    width: int | None = Field(None, gt=0, description="requested capture width in pixels")
    height: int | None = Field(None, gt=0, description="requested capture height in pixels")


CameraConfig = Annotated[
    MjpegCameraConfig | RtspCameraConfig | VideoFileCameraConfig | ImageFolderCameraConfig
    | DeviceCameraConfig,
    Field(discriminator="type"),
]


class ReaderConfig(Section):
    """Thresholds of plate detection, OCR and the multi-frame vote."""

    detector_model: str | None = Field(
        None, description="ONNX detector; default: the model shipped in edge/models/")
    fast_detector: Literal["roi", "always", "never"] = Field(
        "roi", description="use the 256 px int8 detector (edge/models/plate_detector_fast.onnx): "
                           "roi = on cameras with a region of interest, always, or never; "
                           "ignored when detector_model is set")
    recognizer: Literal["ppocr", "own", "cascade", "vote"] = Field(
        "vote", description="plate OCR: ppocr = PP-OCRv4 alone; own = gate-edge's trained line "
                             "model (edge/models/plate_recognizer.onnx) alone; cascade = own "
                             "model first, PP-OCRv4 only when its read is unsure or fits no "
                             "grammar; vote = both on every crop (docs/plate-reading.md)")
    cascade_below: float = Field(
        0.9, ge=0, le=1, description="cascade: PP-OCRv4 also reads a crop whose own-model "
                                     "selection score is below this")
    settled_reread_every: int = Field(
        5, ge=0, le=100, description="once a vehicle's text is final, read its box again only "
                                     "every Nth frame (skipping OCR in between); 0 = every frame")
    detector_confidence: float = Field(0.25, gt=0, lt=1,
                                       description="minimum detector score of a plate box")
    threads: int = Field(2, ge=1, le=16, description="onnxruntime threads per reader process")
    min_read_confidence: float = Field(
        0.3, ge=0, le=1, description="OCR reads below this are dropped before voting")
    vote_frames: int = Field(2, ge=1, le=20,
                             description="agreeing frames that make a read final (DESIGN §10)")
    vote_confidence: float = Field(
        1.0, ge=0, le=1,
        description="a single read at or above this confidence is final alone; 1.0 (the "
                    "default) turns that shortcut off, so every read needs vote_frames "
                    "agreeing frames: single frames at confidence 1.0 have dropped or added a "
                    "character of a plate")
    vote_sure: float = Field(
        0.80, ge=0, le=1,
        description="a read at or above this confidence is sure (default: "
                    "policy.min_plate_confidence). A text with a sure read is final after "
                    "vote_frames agreeing frames, one without after vote_unsure_frames")
    vote_unsure_frames: int = Field(
        4, ge=1, le=40,
        description="agreeing frames that make a text final when none of its reads is sure "
                    "(it is then reported unsure, and the matcher refers it LOW_CONFIDENCE); "
                    "waiting lets a sure frame come first. Never fewer than vote_frames")
    vote_window_s: float = Field(
        4.0, gt=0, le=60, description="reads further apart than this belong to different vehicles")
