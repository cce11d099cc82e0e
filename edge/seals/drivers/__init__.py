"""Seal-reader drivers, one module per device family, chosen by the config's ``type``.

Adding a family: write ``drivers/<family>.py`` with a ``@register("<type>")`` class, add its
config model to ``edge/config/seal_readers.py`` and import the module here.
"""

from __future__ import annotations

from edge.seals.drivers import barcode, eseal
from edge.seals.drivers.base import DRIVERS, Decoded, ReaderConfig, SealDriver, register

__all__ = ["DRIVERS", "Decoded", "ReaderConfig", "SealDriver", "barcode", "create_driver", "eseal",
           "register"]


def create_driver(config: ReaderConfig, lane: str) -> SealDriver:
    """The driver for this reader's ``type``; the error names the types that exist."""
    try:
        cls = DRIVERS[config.type]
    except KeyError:
        raise ValueError(f"no seal driver for type {config.type!r}; known: {sorted(DRIVERS)}") from None
    return cls(config, lane)
