"""``gate-edge run`` under a service manager: READY=1, WATCHDOG=1 and STOPPING=1 really arrive.

systemd itself cannot run here (no PID 1 systemd in these machines), so the test does what it
does for a ``Type=notify`` unit with ``WatchdogSec=``: binds a datagram socket, starts the
daemon with ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``, and reads what comes
back, while the whole simulated lane of tests/edge/daemon (Mosquitto, a relay board with a real
gate-controller, camera and seal simulators) gives the daemon something real to be healthy about.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.central.broker import Mosquitto, wait_port
from tests.edge.daemon.gate import REPO, Gate, gate
from tests.edge.sync import support

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WIRED = "service_notify" in (REPO / "edge" / "daemon" / "app.py").read_text(encoding="utf-8") or \
    "service_notify" in (REPO / "edge" / "cli" / "run_cmd.py").read_text(encoding="utf-8")


class ServiceManager:
    """The notify end of a service manager: a bound datagram socket drained by a thread."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sdm-", dir="/tmp"))
        self.path = self.dir / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="notify-reader", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, timeout: float, value: str = "1") -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, fields in list(self.messages):
                if fields.get(key) == value:
                    return at
            time.sleep(0.05)
        raise AssertionError(f"no {key}={value} within {timeout} s; got {self.messages}")

    def wait_count(self, key: str, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for _, fields in list(self.messages) if key in fields) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} {key} within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        shutil.rmtree(self.dir)


@pytest.fixture
def lane(tmp_path: Path, broker: Mosquitto, keys: support.Keys) -> Iterator[Gate]:
    yield from gate(tmp_path, broker, keys)


@pytest.fixture
def manager() -> Iterator[ServiceManager]:
    m = ServiceManager()
    try:
        yield m
    finally:
        m.close()


@pytest.mark.skipif(not WIRED, reason="gate-edge run does not use edge.service_notify yet "
                                      "(issue 9 part 1: the daemon wires ServiceNotifier)")
def test_gate_edge_run_notifies_ready_feeds_the_watchdog_and_says_stopping(
        lane: Gate, manager: ServiceManager) -> None:
    lane.start_controller()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GATE_EDGE_LOG": "INFO",
           "NOTIFY_SOCKET": str(manager.path), "WATCHDOG_USEC": "2000000"}
    log = (lane.tmp / "gate-edge.log").open("ab")
    # WATCHDOG_PID must name the daemon itself; systemd sets it after fork, so start through a
    # shell that exports its own pid and execs the daemon in place
    proc = subprocess.Popen(
        ["/bin/sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"', "sh",
         sys.executable, "-m", "edge", "run", "-c", str(lane.config)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    lane.procs["gate-edge"] = proc
    ready_at = manager.wait_for("READY", timeout=90)
    wait_port(lane.console_port, timeout=5)  # READY=1 only once the console listens
    feed_at = manager.wait_for("WATCHDOG", timeout=30)
    assert feed_at >= ready_at
    manager.wait_count("WATCHDOG", 3, timeout=30)  # every WatchdogSec/2 = 1 s, not just once
    assert any("STATUS" in fields for _, fields in manager.messages)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, lane.log("gate-edge")[-3000:]
    lane.procs.pop("gate-edge")
    stopping_at = manager.wait_for("STOPPING", timeout=1)
    assert stopping_at > feed_at
