"""A real Mosquitto on a loopback port, for tests, benchmarks and the demo.

Not a mock: the Debian ``mosquitto`` binary runs as a child process with a generated config.
``max_queued_messages`` is raised from Mosquitto's default of 1000, which would otherwise
silently drop QoS 1 messages queued for a slow or briefly absent consumer — the same setting
``config/mosquitto/central.conf`` ships with.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import string
import subprocess
import time
from pathlib import Path
from types import TracebackType

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render_template(path: Path, **values: object) -> str:
    """Fill a ``config/mosquitto/*.template`` (``${NAME}`` placeholders, as envsubst does)."""
    return string.Template(path.read_text(encoding="utf-8")).substitute(
        {k: str(v) for k, v in values.items()})


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class Mosquitto:
    """One broker process; ``restart()`` keeps the port (and, if enabled, the persisted state)."""

    def __init__(self, workdir: Path, *, port: int | None = None, persistence: bool = False,
                 extra: str = "", name: str = "broker", config: str | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.persistence = persistence
        self.extra = extra
        self.name = name
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf_path = workdir / f"{name}.conf"
        self.log_path = workdir / f"{name}.log"

    def config_text(self) -> str:
        """The generated mosquitto.conf (or the given one, e.g. a rendered template)."""
        if self.config is not None:
            return self.config + ("\nuser root\n" if os.geteuid() == 0 else "")
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence {'true' if self.persistence else 'false'}",
            "max_queued_messages 1000000",
            "max_inflight_messages 20",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_dest stderr",
        ]
        if os.geteuid() == 0:
            # Started as root, Mosquitto switches to user 'mosquitto', which cannot write the
            # persistence file into our work directory (and then silently forgets sessions).
            lines.append("user root")
        if self.persistence:
            data = self.workdir / f"{self.name}-data"
            data.mkdir(parents=True, exist_ok=True)
            lines += [f"persistence_location {data}/", "autosave_interval 0"]
        return "\n".join(lines) + "\n" + self.extra

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start and wait until it accepts connections."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config_text(), encoding="utf-8")
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf_path)], stdout=log,
                                         stderr=subprocess.STDOUT)
        finally:
            log.close()
        try:
            wait_port(self.port, timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start; log: {self.log_text()[-2000:]}") from None
        return self

    def stop(self) -> None:
        """SIGTERM (Mosquitto saves its persistence file then), SIGKILL if it hangs."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def log_text(self) -> str:
        """What the broker logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
