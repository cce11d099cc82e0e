"""Value types shared by config sections: durations written the way people write them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(value: object) -> object:
    """Accept ``90s``, ``30m``, ``6h``, ``2d`` or a number of seconds."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timedelta(seconds=value)
        if isinstance(value, str):
            match = _DURATION.match(value)
            if not match:
                raise ValueError(f"{value!r} is not a duration; write e.g. 90s, 30m, 6h or 2d")
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    except OverflowError:
        raise ValueError(f"{value!r} is far too long a duration; write e.g. 6h") from None
    return value


def format_duration(value: timedelta) -> str:
    """The shortest way to write ``value`` in the config's own duration syntax."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms" if seconds < 1 else f"{seconds:g}s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
