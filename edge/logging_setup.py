"""Logging configured in one place, for the daemon and the CLI alike.

Log lines carry structured fields (lane, passage, device) through ``extra=`` so one truck can
be followed end to end with a grep for its passage id (STYLE.md §8).
"""

from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s%(fields)s"
FIELDS = ("lane", "passage", "device", "declaration")


class _FieldsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        parts = [f"{k}={getattr(record, k)}" for k in FIELDS if getattr(record, k, None)]
        record.fields = f" [{' '.join(parts)}]" if parts else ""
        return True


def configure_logging(level: str | int | None = None) -> None:
    """Log to stderr (journald picks it up under systemd); level from arg or GATE_EDGE_LOG."""
    chosen = level or os.environ.get("GATE_EDGE_LOG", "INFO")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_FieldsFilter())
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(chosen if isinstance(chosen, int) else str(chosen).upper())
