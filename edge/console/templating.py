"""Jinja2 environment of the console pages, with the filters officers' eyes need."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi.templating import Jinja2Templates

from edge.domain.plates import classify, default_grammars, normalize_plate

TEMPLATE_DIR = Path(__file__).parent / "templates"
_GRAMMARS = default_grammars()

templates = Jinja2Templates(directory=TEMPLATE_DIR)


def plate_filter(text: str | None) -> str:
    """Print a plate the way it is printed on the truck (``51F-123.45``)."""
    if not text:
        return "—"
    grammar = classify(text, _GRAMMARS)
    return grammar.format(text) if grammar else normalize_plate(text)


def time_filter(value: str | datetime | None, fmt: str = "%H:%M:%S") -> str:
    """Timestamps in UTC, short: officers compare them with the lane clock."""
    if not value:
        return "—"
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.strftime(fmt)


def datetime_filter(value: str | datetime | None) -> str:
    """Date and time, UTC."""
    return time_filter(value, "%Y-%m-%d %H:%M:%S UTC")


templates.env.filters["plate"] = plate_filter
templates.env.filters["hms"] = time_filter
templates.env.filters["dt"] = datetime_filter
templates.env.globals["outcome_label"] = {"open": "OPEN", "refer": "REFER", "hold": "HOLD"}
