"""Plate and container-door artwork drawn with fonts that exist offline.

The camera simulator must show plate texts only as pixels, so plates are drawn the way they look
on the road: Vietnamese plates (Circular 24/2023/TT-BCA) black on white or yellow, one long row
on the front and two rows on the rear; Chinese plates white on blue with the province character
first; ISO 6346 container numbers painted on the right-hand door.
"""

from __future__ import annotations

import logging
import random
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

_LATIN_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSansNarrow-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
)
_CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)

FontT = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _matplotlib_fonts() -> list[str]:
    try:
        import matplotlib

        base = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        return [str(base / "DejaVuSans-Bold.ttf"), str(base / "DejaVuSans.ttf")]
    except ImportError:
        return []


@cache
def latin_font_paths() -> tuple[str, ...]:
    """Bold sans fonts found on this machine (Debian's DejaVu, Liberation, matplotlib's)."""
    found = [p for p in (*_LATIN_FONTS, *_matplotlib_fonts()) if Path(p).is_file()]
    return tuple(found)


@cache
def cjk_font_path() -> str | None:
    """A CJK-capable font for Chinese province characters, or None (apt: fonts-wqy-microhei)."""
    for p in _CJK_FONTS:
        if Path(p).is_file():
            return p
    return None


@cache
def _font(path: str | None, size: int) -> FontT:
    if path is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(path, size)


def _latin(rng: random.Random | None, size: int) -> FontT:
    paths = latin_font_paths()
    if not paths:
        return _font(None, size)
    return _font(paths[0] if rng is None else rng.choice(paths), size)


def _text_block(text: str, font: FontT, colour: tuple[int, int, int], height: int) -> Image.Image:
    """Render one text row tightly and scale it to `height` pixels (keeps plates' narrow look)."""
    left, top, right, bottom = font.getbbox(text)
    w, h = max(1, int(right - left)), max(1, int(bottom - top))
    img = Image.new("RGBA", (w + 4, h + 4), (0, 0, 0, 0))
    ImageDraw.Draw(img).text((2 - left, 2 - top), text, font=font, fill=(*colour, 255))
    scale = height / img.height
    return img.resize((max(1, int(img.width * scale)), height), Image.Resampling.LANCZOS)


def _paste_row(canvas: Image.Image, row: Image.Image, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    scale = min(bw / row.width, bh / row.height)
    row = row.resize((max(1, int(row.width * scale)), max(1, int(row.height * scale))))
    canvas.alpha_composite(row, (x0 + (bw - row.width) // 2, y0 + (bh - row.height) // 2))


def vn_display_rows(text: str, rows: int) -> list[str]:
    """Printed form of a normalized VN plate: `51F12345` -> `51F-123.45` or `51F` / `123.45`."""
    i = 2
    while i < len(text) and not text[i].isdigit():
        i += 1
    if rows == 2 and i == 3 and len(text) >= 4 and text[3].isdigit() and len(text) == 9:
        i = 4  # motorbike series such as X1: 59X1 / 123.45
    head, tail = text[:i], text[i:]
    tail_fmt = f"{tail[:3]}.{tail[3:]}" if len(tail) == 5 else tail
    if rows == 2:
        top = f"{head[:2]}-{head[2:]}" if len(head) == 4 else head
        return [top, tail_fmt]
    return [f"{head}-{tail_fmt}"]


def render_vn_plate(
    text: str, rows: int, *, yellow: bool = False, rng: random.Random | None = None
) -> np.ndarray:
    """Draw a VN plate as an RGB array; one row 520x110, two rows 330x165 (mm-proportional)."""
    bg = (242, 196, 40) if yellow else (238, 238, 232)
    ink = (20, 20, 20)
    w, h = (520, 110) if rows == 1 else (330, 165)
    canvas = Image.new("RGBA", (w, h), (*bg, 255))
    draw = ImageDraw.Draw(canvas)
    draw.rounded_rectangle((3, 3, w - 4, h - 4), radius=10, outline=(*ink, 255), width=5)
    font = _latin(rng, 96)
    lines = vn_display_rows(text, rows)
    if rows == 1:
        _paste_row(canvas, _text_block(lines[0], font, ink, 90), (16, 12, w - 16, h - 12))
    else:
        half = h // 2
        _paste_row(canvas, _text_block(lines[0], font, ink, 90), (18, 10, w - 18, half - 2))
        _paste_row(canvas, _text_block(lines[1], font, ink, 90), (14, half + 2, w - 14, h - 10))
    return np.asarray(canvas.convert("RGB"))


def render_cn_plate(text: str, *, rng: random.Random | None = None) -> np.ndarray | None:
    """Draw a blue CN plate (440x140); None when no CJK font is installed to draw the province."""
    cjk = cjk_font_path()
    if cjk is None:
        log.warning("no CJK font installed (apt: fonts-wqy-microhei); CN plates not drawn")
        return None
    w, h = 440, 140
    bg, ink = (20, 60, 170), (245, 245, 245)
    canvas = Image.new("RGBA", (w, h), (*bg, 255))
    ImageDraw.Draw(canvas).rounded_rectangle(
        (5, 5, w - 6, h - 6), radius=8, outline=(*ink, 255), width=3
    )
    prov = _text_block(text[0], _font(cjk, 96), ink, 90)
    _paste_row(canvas, prov, (18, 22, 70, h - 22))
    _paste_row(canvas, _text_block(text[1], _latin(rng, 96), ink, 90), (76, 22, 128, h - 22))
    ImageDraw.Draw(canvas).ellipse((134, 64, 144, 74), fill=(*ink, 255))
    _paste_row(canvas, _text_block(text[2:], _latin(rng, 96), ink, 90), (150, 22, w - 16, h - 22))
    return np.asarray(canvas.convert("RGB"))


def render_container_code(code: str, *, rng: random.Random | None = None) -> np.ndarray:
    """Paint an ISO 6346 code as on a door: `MSKU 123456 [7]` with the check digit boxed."""
    owner, serial, check = code[:4], code[4:10], code[10:]
    ink = (245, 245, 245)
    font = _latin(rng, 96)
    parts = [_text_block(owner, font, ink, 80), _text_block(serial, font, ink, 80)]
    digit = _text_block(check, font, ink, 70)
    gap = 28
    w = parts[0].width + parts[1].width + digit.width + 3 * gap + 20
    h = 100
    canvas = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    x = 0
    for part in parts:
        canvas.alpha_composite(part, (x, 10))
        x += part.width + gap
    canvas.alpha_composite(digit, (x + 8, 15))
    ImageDraw.Draw(canvas).rectangle(
        (x, 6, x + digit.width + 16, 94), outline=(*ink, 255), width=5
    )
    return np.asarray(canvas)  # RGBA: painted on the door, transparent elsewhere
