"""What every seal-reader driver provides, and the registry that picks one by ``type``.

A driver turns bytes from its serial port into ``SealRead``s and ``FrameError``s. It does no
I/O and keeps no clock of its own, so the same object is driven by the serial runtime, by the
tests byte by byte, and by the benchmark from memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from edge.config.seal_readers import BarcodeScannerConfig, ESealReaderConfig
from edge.domain.model import SealRead
from edge.seals.protocol import FrameError

ReaderConfig = ESealReaderConfig | BarcodeScannerConfig


@dataclass(slots=True)
class Decoded:
    """Outcome of one ``feed``: reads in arrival order and the errors met on the way."""

    reads: list[SealRead] = field(default_factory=list)
    errors: list[FrameError] = field(default_factory=list)


class SealDriver(ABC):
    """A device family's decoder; subclasses register themselves under their config ``type``."""

    type: ClassVar[str]

    def __init__(self, config: ReaderConfig, lane: str) -> None:
        self.config = config
        self.lane = lane

    @abstractmethod
    def feed(self, data: bytes, now: datetime) -> Decoded:
        """Decode these bytes; must never raise on any input."""

    @property
    @abstractmethod
    def pending(self) -> bool:
        """An unfinished frame or line is buffered (the runtime times it out)."""

    @abstractmethod
    def reset(self) -> FrameError | None:
        """Drop a half-received frame (timeout, port lost); report it if there was one."""


DRIVERS: dict[str, type[SealDriver]] = {}


def register(type_name: str) -> Callable[[type[SealDriver]], type[SealDriver]]:
    """Class decorator: make a driver available under the config ``type`` it implements."""

    def deco(cls: type[SealDriver]) -> type[SealDriver]:
        if type_name in DRIVERS:
            raise ValueError(f"two seal drivers claim type {type_name!r}")
        cls.type = type_name
        DRIVERS[type_name] = cls
        return cls

    return deco
