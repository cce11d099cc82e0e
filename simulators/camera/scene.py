"""Truck frames for the camera simulator and for the detector's synthetic training data.

A frame is drawn from a `TruckView` (which plates and containers the truck carries, which side
the camera sees, the lighting) and a progress value 0..1 (the truck driving towards the camera),
so the same code feeds the MJPEG server and `training/` — the detector is trained on what the
simulator shows, and the simulator shows plates only as pixels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import cv2
import numpy as np

from simulators.camera.artwork import (
    render_cn_plate,
    render_container_code,
    render_vn_plate,
)

Condition = Literal["daylight", "dusk", "rain", "glare", "motion_blur"]
CONDITIONS: tuple[Condition, ...] = ("daylight", "dusk", "rain", "glare", "motion_blur")
View = Literal["front", "rear"]

CLASS_PLATE = 0
CLASS_CONTAINER = 1


@dataclass(frozen=True)
class PlateSpec:
    """A plate as the world shows it: text, grammar family and number of rows."""

    text: str
    country: Literal["VN", "CN"] = "VN"
    rows: int = 1
    yellow: bool = True


@dataclass(frozen=True)
class TruckView:
    """What one camera sees of one truck."""

    view: View = "front"
    tractor_plate: PlateSpec | None = None
    trailer_plate: PlateSpec | None = None
    containers: tuple[str, ...] = ()
    condition: Condition = "daylight"
    body_colour: tuple[int, int, int] = (40, 90, 160)


@dataclass
class Marked:
    """A labelled object in a rendered frame (pixel box x0, y0, x1, y1)."""

    cls: int
    text: str
    box: tuple[float, float, float, float]


@dataclass
class Frame:
    """A rendered BGR frame and the ground truth behind it (never sent over the wire)."""

    image: np.ndarray
    objects: list[Marked] = field(default_factory=list)


def iso6346_check_digit(code10: str) -> str:
    """ISO 6346 check digit: letters map to 10..38 skipping multiples of 11, weights 2**i."""
    values: dict[str, int] = {}
    v = 10
    for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if v % 11 == 0:
            v += 1
        values[ch] = v
        v += 1
    total = sum((values[c] if c.isalpha() else int(c)) * 2**i for i, c in enumerate(code10))
    return str(total % 11 % 10)


def _art_for(plate: PlateSpec, rng: random.Random) -> np.ndarray | None:
    if plate.country == "CN":
        return render_cn_plate(plate.text, rng=rng)
    return render_vn_plate(plate.text, plate.rows, yellow=plate.yellow, rng=rng)


def _background(w: int, h: int, rng: random.Random, condition: Condition) -> np.ndarray:
    sky = np.array([rng.randint(150, 230), rng.randint(140, 210), rng.randint(120, 190)])
    road = np.array([rng.randint(70, 120)] * 3)
    horizon = int(h * rng.uniform(0.3, 0.45))
    img = np.empty((h, w, 3), np.uint8)
    img[:horizon] = sky
    ramp = np.linspace(0.8, 1.2, h - horizon)[:, None, None]
    img[horizon:] = np.clip(road * ramp, 0, 255).astype(np.uint8)
    for _ in range(rng.randint(2, 6)):  # gate canopy pillars and buildings
        x = rng.randint(0, w)
        bw = rng.randint(w // 40, w // 10)
        top = rng.randint(0, horizon)
        col = np.array([rng.randint(60, 200) for _ in range(3)], np.uint8)
        img[top : horizon + rng.randint(0, h // 6), x : x + bw] = col
    cv2.line(img, (w // 2, horizon), (w // 2, h), (230, 230, 230), max(2, w // 200))
    # Sensor noise: a window of one fixed noise field, shifted per frame. OpenCV's own RNG
    # (cv2.randn after cv2.setRNGSeed) gave different pixels for the same seed once its thread
    # pool was up, so a seeded frame was not reproducible and detector tests flaked.
    dy, dx = rng.randint(0, _NOISE_MARGIN), rng.randint(0, _NOISE_MARGIN)
    noise = _noise_field(h, w)[dy : dy + h, dx : dx + w]
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


_NOISE_MARGIN = 64


@cache
def _noise_field(h: int, w: int) -> np.ndarray:
    """Gaussian noise (sigma 6) for frames of this size, with a margin to shift it by."""
    field = np.random.default_rng(6).normal(0.0, 6.0, (h + _NOISE_MARGIN, w + _NOISE_MARGIN, 3))
    return np.rint(field).astype(np.int16)


def _paste_warped(
    frame: np.ndarray, art: np.ndarray, quad: np.ndarray
) -> tuple[float, float, float, float]:
    """Warp `art` (RGB or RGBA) onto the quadrilateral `quad` of `frame`; returns its box."""
    h, w = art.shape[:2]
    fh, fw = frame.shape[:2]
    # warp only into the quad's bounding rectangle: full-frame warps cost ~10x more
    bx0 = int(max(0, np.floor(quad[:, 0].min())))
    by0 = int(max(0, np.floor(quad[:, 1].min())))
    bx1 = int(min(fw, np.ceil(quad[:, 0].max()) + 1))
    by1 = int(min(fh, np.ceil(quad[:, 1].max()) + 1))
    if bx1 <= bx0 or by1 <= by0:
        return (0.0, 0.0, 0.0, 0.0)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    local = (quad - np.array([bx0, by0])).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, local)
    size = (bx1 - bx0, by1 - by0)
    bgr = cv2.cvtColor(art[..., :3], cv2.COLOR_RGB2BGR)
    warped = cv2.warpPerspective(bgr, m, size, flags=cv2.INTER_AREA)
    alpha_src = art[..., 3] if art.shape[2] == 4 else np.full((h, w), 255, np.uint8)
    alpha = cv2.warpPerspective(alpha_src, m, size, flags=cv2.INTER_LINEAR)
    a = (alpha.astype(np.float32) / 255.0)[..., None]
    region = frame[by0:by1, bx0:bx1]
    region[:] = (warped * a + region * (1 - a)).astype(np.uint8)
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)
    return (
        float(max(0, x0)), float(max(0, y0)), float(min(fw, x1)), float(min(fh, y1))
    )


def _quad(cx: float, cy: float, w: float, h: float, rng: random.Random) -> np.ndarray:
    """A slightly rotated and sheared rectangle, as a plate seen from a pole-mounted camera."""
    ang = np.deg2rad(rng.uniform(-6, 6))
    shear = rng.uniform(-0.08, 0.08) * h
    pts = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    pts[:2, 0] += shear
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    persp = rng.uniform(-0.06, 0.06) * h
    pts[1, 1] += persp
    pts[2, 1] -= persp
    return (pts @ rot.T) + np.array([cx, cy])


def apply_condition(img: np.ndarray, condition: Condition, rng: random.Random) -> np.ndarray:
    """Lighting and weather: dusk darkens with sensor noise, rain streaks, sun glare, blur."""
    out = img.astype(np.float32)
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    if condition == "dusk":
        out = 255 * (out / 255) ** rng.uniform(1.6, 2.4) * np.array([1.1, 0.9, 0.8])
        out += nrng.normal(0, 8, out.shape)
    elif condition == "rain":
        streaks = np.zeros(img.shape[:2], np.float32)
        h, w = img.shape[:2]
        for _ in range(rng.randint(300, 700)):
            x, y = rng.randint(0, w), rng.randint(0, h)
            ln = rng.randint(h // 40, h // 12)
            cv2.line(streaks, (x, y), (x + ln // 6, y + ln), 1.0, 1)
        out = out * 0.8 + 40 + streaks[..., None] * 90
        out = cv2.GaussianBlur(out, (3, 3), 0).astype(np.float32)
    elif condition == "glare":
        h, w = img.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.3, 0.8) * h
        r = rng.uniform(0.08, 0.2) * w
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        out = out + blob[..., None] * rng.uniform(120, 200)
    elif condition == "motion_blur":
        k = rng.choice([7, 9, 11, 15])
        kernel = np.zeros((k, k), np.float32)
        if rng.random() < 0.5:
            kernel[k // 2, :] = 1.0 / k
        else:
            kernel[:, k // 2] = 1.0 / k
        out = cv2.filter2D(out, -1, kernel).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def render(
    truck: TruckView,
    *,
    size: tuple[int, int] = (1920, 1080),
    progress: float = 0.7,
    seed: int = 0,
    crops: dict[str, np.ndarray] | None = None,
    empty: bool = False,
) -> Frame:
    """Render one frame; `progress` 0 = far away, 1 = at the stop line, fills the frame.

    `crops` may map a plate text to a real RGB plate crop, composited instead of drawn art;
    `empty` draws the lane without a truck.
    """
    rng = random.Random(seed)
    w, h = size
    img = _background(w, h, rng, truck.condition)
    objects: list[Marked] = []
    if empty:  # the lane with no truck in it
        return Frame(image=apply_condition(img, truck.condition, rng), objects=objects)
    scale = 0.35 + 0.65 * float(np.clip(progress, 0, 1))
    body_w = w * 0.55 * scale
    body_h = h * 0.75 * scale
    cx = w / 2 + rng.uniform(-0.12, 0.12) * w
    bottom = h * (0.72 + 0.26 * scale)
    x0, x1 = int(cx - body_w / 2), int(cx + body_w / 2)
    y0, y1 = int(bottom - body_h), int(bottom)
    colour = tuple(int(c) for c in truck.body_colour)
    cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
    dark = tuple(max(0, c - 60) for c in colour)
    cv2.rectangle(img, (x0, y1 - int(body_h * 0.08)), (x1, y1), dark, -1)  # bumper
    for wx in (x0 + body_w * 0.12, x1 - body_w * 0.12):  # wheels
        cv2.circle(img, (int(wx), y1), int(body_h * 0.09), (25, 25, 25), -1)
    plate_w_px = body_w * 0.24
    plate_y = y1 - body_h * 0.17
    crops = crops or {}
    if truck.view == "front":
        cv2.rectangle(  # windscreen and grille
            img, (x0 + int(body_w * 0.08), y0 + int(body_h * 0.08)),
            (x1 - int(body_w * 0.08), y0 + int(body_h * 0.4)), (90, 110, 120), -1,
        )
        for gy in range(int(y0 + body_h * 0.5), int(y1 - body_h * 0.28), max(3, int(body_h / 40))):
            cv2.line(img, (int(cx - body_w * 0.3), gy), (int(cx + body_w * 0.3), gy), dark, 2)
        plate = truck.tractor_plate
    else:
        for door_x in (x0, int(cx)):  # container doors with locking bars
            cv2.rectangle(img, (door_x + 4, y0 + 4), (door_x + int(body_w / 2) - 4,
                          y1 - int(body_h * 0.24)), tuple(min(255, c + 20) for c in colour), 3)
            for bar in (0.25, 0.75):
                bx = door_x + int(body_w / 2 * bar)
                cv2.line(img, (bx, y0 + 8), (bx, y1 - int(body_h * 0.25)), (150, 150, 150), 3)
        for i, code in enumerate(truck.containers[:1]):
            paint = render_container_code(code, rng=rng)
            cw = body_w * 0.36
            ch = cw * paint.shape[0] / paint.shape[1]
            quad = _quad(cx + body_w * 0.24, y0 + body_h * (0.12 + 0.1 * i), cw, ch, rng)
            box = _paste_warped(img, paint, quad)
            objects.append(Marked(CLASS_CONTAINER, code, box))
        plate = truck.trailer_plate
        plate_w_px *= 0.75
    if plate is not None:
        art: np.ndarray | None = crops.get(plate.text)
        if art is None:
            art = _art_for(plate, rng)
        if art is not None:
            ph = plate_w_px * art.shape[0] / art.shape[1]
            quad = _quad(cx + rng.uniform(-0.1, 0.1) * body_w, plate_y, plate_w_px, ph, rng)
            objects.append(Marked(CLASS_PLATE, plate.text, _paste_warped(img, art, quad)))
    img = apply_condition(img, truck.condition, rng)
    return Frame(image=img, objects=objects)


VN_SERIES = "ABCDEFGHKLMNPSTUVXYZ"
VN_TRUCK_SERIES = "CDHLMNPSTX"


def random_vn_text(rng: random.Random, *, trailer: bool = False) -> str:
    """A grammatical VN truck plate: 2-digit province, series letter, 5 digits (R = trailer)."""
    province = rng.randint(11, 99)
    series = "R" if trailer else rng.choice(VN_TRUCK_SERIES)
    return f"{province:02d}{series}{rng.randint(0, 99999):05d}"


CN_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"


def random_cn_text(rng: random.Random) -> str:
    """A CN plate: province character, letter, then five letters/digits (no I or O)."""
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    tail = "".join(rng.choice("0123456789" * 3 + letters) for _ in range(5))
    return rng.choice(CN_PROVINCES) + rng.choice(letters) + tail


def random_container(rng: random.Random) -> str:
    """A valid ISO 6346 freight-container number (U category) with its check digit."""
    owner = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3)) + "U"
    body = owner + f"{rng.randint(0, 999999):06d}"
    return body + iso6346_check_digit(body)


def random_truck(rng: random.Random, view: View | None = None) -> TruckView:
    """A random truck with a random view and condition (synthetic training and soak scenes)."""
    cn = rng.random() < 0.2
    tractor = (
        PlateSpec(random_cn_text(rng), "CN", 1, False)
        if cn
        else PlateSpec(random_vn_text(rng), "VN", 1, rng.random() < 0.7)
    )
    trailer = PlateSpec(random_vn_text(rng, trailer=True), "VN", 2, rng.random() < 0.7)
    return TruckView(
        view=view if view is not None else ("front" if rng.random() < 0.5 else "rear"),
        tractor_plate=tractor,
        trailer_plate=trailer,
        containers=(random_container(rng),),
        condition=rng.choice(CONDITIONS),
        body_colour=(rng.randint(20, 220), rng.randint(20, 220), rng.randint(20, 220)),
    )
