"""Fixtures: a simulated relay board on a real pty, and controllers talking to it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate_controller.client import ControllerClient
from gate_controller.config import LaneTiming, RelayBoardConfig
from gate_controller.runtime import GateController
from simulators.relay_board import BoardModel, RelayBoardServer

REPO = Path(__file__).resolve().parents[2]

FAST_TIMING = {"clear_settle_s": 0.3, "arm_travel_timeout_s": 2.0, "token_ttl_s": 10.0,
               "heartbeat_timeout_s": 1.0, "stuck_loop_s": 30.0, "poll_interval_s": 0.02}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[RelayBoardServer]:
    server = RelayBoardServer(BoardModel(travel_time_s=0.4), link=tmp_path / "relay1",
                              seed=1).start()
    yield server
    server.stop()


def board_config(sim: RelayBoardServer, tmp_path: Path, **timing: Any) -> RelayBoardConfig:
    return RelayBoardConfig(
        name="board1", lane="L1", port=sim.port, baudrate=115200, timeout_s=0.3, retries=2,
        inter_frame_gap_ms=1.0, ipc_socket=str(tmp_path / "ctl-{name}.sock"),
        timing=LaneTiming(**{**FAST_TIMING, **timing}),
    )


def write_yaml(cfg: RelayBoardConfig, path: Path) -> Path:
    t = cfg.timing
    path.write_text(
        "relay_boards:\n"
        f"  - name: {cfg.name}\n    lane: {cfg.lane}\n    port: {cfg.port}\n"
        f"    baudrate: {cfg.baudrate}\n    timeout_s: {cfg.timeout_s}\n"
        f"    retries: {cfg.retries}\n    inter_frame_gap_ms: {cfg.inter_frame_gap_ms}\n"
        f"    ipc_socket: {cfg.ipc_socket}\n"
        "    timing:\n" + "".join(f"      {k}: {v}\n" for k, v in t.model_dump().items()),
        encoding="utf-8",
    )
    return path


class InProcessController:
    """GateController on its own asyncio loop in a thread, for tests."""

    def __init__(self, cfg: RelayBoardConfig) -> None:
        self.cfg = cfg
        self.controller = GateController(cfg)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gc-test", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            await self.controller.start()
            self._ready.set()
            await self._stop.wait()
            await self.controller.stop()

        self._loop.run_until_complete(main())
        self._loop.close()

    def start(self) -> InProcessController:
        self._thread.start()
        assert self._ready.wait(10), "controller did not start"
        return self

    def stop(self) -> None:
        if self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()

    @property
    def socket(self) -> Path:
        return Path(self.cfg.socket_path())


@pytest.fixture
def controller(sim: RelayBoardServer, tmp_path: Path) -> Iterator[InProcessController]:
    ctl = InProcessController(board_config(sim, tmp_path)).start()
    yield ctl
    ctl.stop()


@pytest.fixture
def client(controller: InProcessController) -> Iterator[ControllerClient]:
    with ControllerClient(controller.socket) as c:
        yield c


class Heartbeats:
    """Sends gate-edge heartbeats from a thread until stopped (a live gate-edge)."""

    def __init__(self, client: ControllerClient, period: float = 0.1) -> None:
        self.client = client
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.heartbeat()
            except OSError:
                return
            self._stop.wait(self.period)

    def start(self) -> Heartbeats:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


@pytest.fixture
def heartbeats(client: ControllerClient) -> Iterator[Heartbeats]:
    hb = Heartbeats(client).start()
    yield hb
    hb.stop()


def spawn_controller(config_file: Path, board: str = "board1") -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "gate_controller", "run", "-c", str(config_file), "-b", board],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def wait_path(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        time.sleep(0.02)
    raise TimeoutError(f"{path} did not appear")
