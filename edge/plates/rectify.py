"""Crop geometry: deskew a plate crop and split a two-row plate into its rows.

PP-OCRv4 reads one horizontal text line; a two-row plate (`59-X1` over `123.45`) must be cut
between the rows, and a tilted plate straightened first, or the rows bleed into each other.
"""

from __future__ import annotations

import cv2
import numpy as np


def _text_mask(gray: np.ndarray) -> np.ndarray:
    """Pixels that belong to characters, whatever the plate's polarity (dark on light or not)."""
    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    h, w = binary.shape
    inner = binary[h // 5 : h - h // 5, w // 10 : w - w // 10]
    # characters are the minority class inside the plate
    if inner.size and inner.mean() < 127:
        binary = 255 - binary
    return (255 - binary).astype(np.uint8)


def skew_angle(crop: np.ndarray) -> float:
    """Tilt of the text rows in degrees (positive: clockwise), from the character blobs."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    h, w = gray.shape
    if h < 12 or w < 24:
        return 0.0
    mask = _text_mask(gray)
    n, _, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
    pts = []
    for i in range(1, n):
        _, y, bw, bh, area = stats[i]
        if 0.2 * h < bh < 0.95 * h and bw < 0.3 * w and area > 15 and bh > bw * 0.8:
            pts.append((cents[i][0], y + bh))  # bottom of each character
    if len(pts) < 3:
        return 0.0
    arr = np.array(pts)
    # two-row plates: keep the row with the most characters (bottom edges cluster)
    ys = arr[:, 1]
    if ys.max() - ys.min() > 0.3 * h:
        mid = (ys.max() + ys.min()) / 2
        lower, upper = arr[ys > mid], arr[ys <= mid]
        arr = lower if len(lower) >= len(upper) else upper
    if len(arr) < 3 or np.ptp(arr[:, 0]) < w * 0.3:
        return 0.0
    slope = np.polyfit(arr[:, 0], arr[:, 1], 1)[0]
    angle = float(np.degrees(np.arctan(slope)))
    return angle if abs(angle) <= 20 else 0.0


def rectify(crop: np.ndarray) -> np.ndarray:
    """Rotate the crop so the text rows are horizontal (small tilts only)."""
    angle = skew_angle(crop)
    if abs(angle) < 1.0:
        return crop
    h, w = crop.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(crop, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def split_row_at(crop: np.ndarray) -> int:
    """Row where a two-row plate divides: the quietest band of vertical edges near mid-height."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    h, w = gray.shape
    edges = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3))
    x0, x1 = w // 10, w - w // 10
    profile = edges[:, x0:x1].mean(axis=1)
    k = max(3, h // 20) | 1
    profile = np.convolve(profile, np.ones(k) / k, mode="same")
    lo, hi = int(h * 0.35), int(h * 0.65)
    if hi <= lo:
        return h // 2
    return lo + int(np.argmin(profile[lo:hi]))


def split_rows(crop: np.ndarray) -> list[np.ndarray]:
    """Top and bottom rows of a two-row plate, each with a little overlap around the cut."""
    h = crop.shape[0]
    cut = split_row_at(crop)
    pad = max(1, h // 30)
    return [crop[: min(h, cut + pad)], crop[max(0, cut - pad) :]]


def join_rows(top: np.ndarray, bottom: np.ndarray, height: int) -> np.ndarray:
    """Both rows of a two-row plate side by side on one line of `height` pixels.

    One recognizer run reads the plate instead of two; a half-height gap of the bottom row's
    edge colour keeps the last top character and the first bottom one apart.
    """
    a = cv2.resize(top, (max(8, round(top.shape[1] * height / max(1, top.shape[0]))), height))
    b = cv2.resize(bottom, (max(8, round(bottom.shape[1] * height / max(1, bottom.shape[0]))),
                            height))
    gap = np.repeat(b[:, :1], height // 2, axis=1)
    return np.hstack([a, gap, b])
