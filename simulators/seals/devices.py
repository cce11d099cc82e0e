"""The simulated seal readers: what a scenario, a test or an operator can make them send.

Each method puts real bytes on the pty and returns them, so a test can assert on exactly what
went over the wire. Faults (noise, truncation, bad CRC, bursts, unplugging) are the ones met on
real gates: long RS-232 runs next to barrier motors, flaky USB hubs, readers rebooting.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import TracebackType
from typing import Self

from simulators.seals.pty_port import PtyPort
from simulators.seals.wire import barcode_line, crc16, eseal_frame, eseal_payload


class _SimulatedDevice:
    def __init__(self, link: str | Path | None = None, *, seed: int | None = None) -> None:
        self.port = PtyPort(link)
        self.rng = random.Random(seed)
        self.sent_reads = 0

    @property
    def path(self) -> str:
        """The stable port path for the driver's config."""
        return self.port.path

    def start(self) -> Self:
        """Plug the device in."""
        self.port.open()
        return self

    def close(self) -> None:
        """Unplug and clean up the pty and link."""
        self.port.close()

    def unplug(self) -> None:
        """The reader's USB cable is pulled."""
        self.port.unplug()

    def replug(self) -> None:
        """The cable is plugged back in."""
        self.port.replug()

    def raw(self, data: bytes) -> bytes:
        """Send arbitrary bytes."""
        self.port.write(data)
        return data

    def noise(self, n: int) -> bytes:
        """Line noise: ``n`` random bytes that contain no frame start or line end."""
        data = bytes(self._noise_byte() for _ in range(n))
        self.port.write(data)
        return data

    def _noise_byte(self) -> int:
        return self.rng.randrange(256)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class ESealReaderSimulator(_SimulatedDevice):
    """An RFID e-seal reader speaking the framed protocol of docs/protocols.md."""

    def __init__(self, link: str | Path | None = None, *, reader_id: str = "R1",
                 manufacturer: str | None = "ACME", seed: int | None = None) -> None:
        super().__init__(link, seed=seed)
        self.reader_id = reader_id
        self.manufacturer = manufacturer

    def payload(self, seal: str, status: str = "I", **fields: str | int | None) -> bytes:
        """The payload this reader would send for a seal (fields override the defaults)."""
        rdr = fields.pop("rdr", self.reader_id)
        mfr = fields.pop("mfr", self.manufacturer)
        bat = fields.pop("bat", None)
        ts = fields.pop("ts", None)
        extra = {k: str(v) for k, v in fields.items() if v is not None}
        return eseal_payload(seal, status, rdr=None if rdr is None else str(rdr),
                             mfr=None if mfr is None else str(mfr), bat=bat,
                             ts=None if ts is None else str(ts), extra=extra)

    def read(self, seal: str, status: str = "I", **fields: str | int | None) -> bytes:
        """The reader sees a seal: one valid frame."""
        frame = eseal_frame(self.payload(seal, status, **fields))
        self.port.write(frame)
        self.sent_reads += 1
        return frame

    def truncate(self, seal: str = "TRUNC0001", status: str = "I") -> bytes:
        """A frame cut off part-way (reader reset, cable glitch)."""
        frame = eseal_frame(self.payload(seal, status))
        cut = frame[: self.rng.randrange(2, len(frame) - 2)]
        self.port.write(cut)
        return cut

    def badcrc(self, seal: str = "BADCRC001", status: str = "I") -> bytes:
        """A complete frame whose CRC does not match (a flipped bit on the line)."""
        payload = self.payload(seal, status)
        frame = eseal_frame(payload, crc=crc16(payload) ^ 0x0100)
        self.port.write(frame)
        return frame

    def burst(self, n: int, seal: str = "BURST", status: str = "I") -> bytes:
        """``n`` frames back to back in one write (seals ``BURST00001``...)."""
        data = b"".join(eseal_frame(self.payload(f"{seal}{i:05d}", status)) for i in range(1, n + 1))
        self.port.write(data)
        self.sent_reads += n
        return data

    def _noise_byte(self) -> int:
        return self.rng.choice([b for b in range(256) if b != 0x02])


class BarcodeScannerSimulator(_SimulatedDevice):
    """A serial barcode scanner: one ASCII line per scan, CR LF, optional prefix/suffix."""

    def __init__(self, link: str | Path | None = None, *, prefix: str = "", suffix: str = "",
                 seed: int | None = None) -> None:
        super().__init__(link, seed=seed)
        self.prefix = prefix
        self.suffix = suffix

    def read(self, code: str) -> bytes:
        """A successful scan of a printed seal id."""
        line = barcode_line(code, self.prefix, self.suffix)
        self.port.write(line)
        self.sent_reads += 1
        return line

    def noise(self, n: int) -> bytes:
        """A garbled line: ``n`` random bytes (at least one a control byte), then CR LF."""
        first = self.rng.choice([b for b in range(0x20) if b not in (0x0A, 0x0D)])
        data = bytes([first, *(self._noise_byte() for _ in range(max(n - 1, 0)))]) + b"\r\n"
        self.port.write(data)
        return data

    def truncate(self, code: str = "TRUNC0001") -> bytes:
        """A scan cut off before its terminator (scanner unplugged mid-line)."""
        line = barcode_line(code, self.prefix, self.suffix, terminator=b"")
        cut = line[: max(1, len(line) // 2)]
        self.port.write(cut)
        return cut

    def burst(self, n: int, code: str = "BURST") -> bytes:
        """``n`` scans back to back in one write."""
        data = b"".join(barcode_line(f"{code}{i:05d}", self.prefix, self.suffix) for i in range(1, n + 1))
        self.port.write(data)
        self.sent_reads += n
        return data

    def _noise_byte(self) -> int:
        return self.rng.choice([b for b in range(256) if b not in (0x0A, 0x0D)])
