"""A serial device on a real pseudo-terminal, with a stable path that survives replugging.

A USB-serial reader that is unplugged and plugged back gets a new ``/dev/ttyUSBn``; udev rules
give it a stable name (``/dev/gate-seal-1``) that points at whichever node it has now. The
simulator does the same with a symlink: ``unplug`` closes the pty (the reader's ``read`` fails
exactly as on a real unplug) and removes the link, ``replug`` opens a fresh pty and points the
link at it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import tempfile
import threading
import time
import tty
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

class PtyPort:
    """The device end (pty master) of a simulated serial port."""

    def __init__(self, link: str | Path | None = None, *, write_timeout_s: float = 0.5) -> None:
        self._own_dir: str | None = None
        if link is None:
            self._own_dir = tempfile.mkdtemp(prefix="gate-sim-")
            link = Path(self._own_dir) / "tty"
        self.link = Path(link)
        self.write_timeout_s = write_timeout_s
        self._master: int | None = None
        self._slave: int | None = None
        self.pty_name: str | None = None
        self._lock = threading.Lock()
        self.bytes_sent = 0
        self.bytes_dropped = 0
        self.plug_count = 0

    @property
    def path(self) -> str:
        """Where a driver opens the port (the stable link)."""
        return str(self.link)

    @property
    def plugged(self) -> bool:
        """The device is connected."""
        return self._master is not None

    def open(self) -> PtyPort:
        """Plug in: a new pty, set raw (no echo, no line editing), and the link pointing at it."""
        with self._lock:
            if self._master is not None:
                return self
            master, slave = os.openpty()
            # Raw before any reader opens it: a cooked, echoing pty would bounce our bytes back.
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._master, self._slave = master, slave
            self.pty_name = os.ttyname(slave)
            tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.pty_name)
            tmp.replace(self.link)  # atomic, like udev re-pointing a by-id link
            self.plug_count += 1
            logger.info("pty %s plugged in at %s", self.pty_name, self.link)
        return self

    def unplug(self) -> None:
        """Pull the cable: close the pty so the reader gets an I/O error, remove the link."""
        with self._lock:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = None
            logger.info("pty %s unplugged", self.pty_name)
            self.pty_name = None

    def replug(self) -> None:
        """Plug back in (a new pty behind the same link)."""
        self.open()

    def close(self) -> None:
        """Unplug and remove the temporary folder if the port made one."""
        self.unplug()
        if self._own_dir is not None:
            with contextlib.suppress(OSError):
                Path(self._own_dir).rmdir()
            self._own_dir = None

    def write(self, data: bytes) -> int:
        """Send bytes; lost when unplugged, or when the reader takes nothing for a while.

        A pty holds only a few KiB; a burst larger than that waits for the reader to drain
        it (like a UART with RTS/CTS flow control). If the reader takes nothing for
        ``write_timeout_s`` the rest is dropped, as bytes on an unread wire are.
        """
        with self._lock:
            fd = self._master
            if fd is None:
                self.bytes_dropped += len(data)
                return 0
            sent = 0
            last_progress = time.monotonic()
            while sent < len(data):
                try:
                    sent += os.write(fd, data[sent:])
                    last_progress = time.monotonic()
                except BlockingIOError:
                    if time.monotonic() - last_progress > self.write_timeout_s:
                        break
                    select.select([], [fd], [], 0.05)
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    break
            self.bytes_sent += sent
            self.bytes_dropped += len(data) - sent
            if sent < len(data):
                logger.warning("pty %s: %d bytes not taken by the reader, dropped",
                               self.pty_name, len(data) - sent)
            return sent

    def __enter__(self) -> PtyPort:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
