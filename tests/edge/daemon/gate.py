"""A whole simulated lane for daemon tests: every part real, on its real wire protocol.

Mosquitto (the ``broker`` fixture), the central simulator, a relay board on a pty driven by a
``gate-controller`` process, an HTTP MJPEG camera, an e-seal reader on a pty, and
``gate-edge run`` as a process reading all of it from one YAML file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gate_controller.client import ControllerClient
from simulators.camera.server import CameraServer, truck_from_json
from simulators.central.broker import Mosquitto, free_port, wait_port
from simulators.relay_board import BoardModel, RelayBoardServer
from simulators.seals.devices import ESealReaderSimulator
from tests.edge.sync import support

REPO = Path(__file__).resolve().parents[3]

# Declaration 105123456781 of config/demo/manifests.jsonl: what the lane's truck carries.
DECLARATION = {
    "declaration_no": "105123456781", "version": 2, "channel": "green", "status": "released",
    "tractor_plate": "29C-738.04", "trailer_plate": "29R-045.67",
    "containers": ["TGHU7654320"],
    "seals": [{"seal_id": "ES00012345", "type": "e-seal", "container": "TGHU7654320"}],
    "trader": {"tax_code": "0109876543", "name": "Cong ty CP Logistics Ha Noi", "aeo": False},
    "valid_from": "2026-01-01T00:00:00+07:00", "valid_until": "2030-12-31T23:59:59+07:00",
}
# Its tractor and its two-row trailer plate are read from the camera pixels like any other.
TRUCK = {"tractor_plate": "29C73804", "trailer_plate": "29R04567",
         "containers": ["TGHU7654320"], "duration_s": 12}


def write_config(tmp: Path, *, mqtt_port: int, camera_url: str, seal_port: str,
                 relay_port: str, console_port: int, keys: support.Keys,
                 storage_dir: Path | None = None, min_free_mb: int = 500,
                 metrics_port: int | None = None) -> Path:
    """One lane, every device; fast timings so a test truck takes seconds.

    ``storage_dir`` (default ``tmp/var``) holds cache.db, records.db and evidence/; a test
    may put it on a filesystem of its own (a small tmpfs for a full disk). ``metrics_port``
    switches the console off and serves /metrics alone on that port.
    """
    console = (f"{{enabled: true, host: 127.0.0.1, port: {console_port}, secure_cookies: false}}"
               if metrics_port is None else
               f"{{enabled: false, metrics_host: 127.0.0.1, metrics_port: {metrics_port}}}")
    text = f"""
site: {{code: {support.SITE}, name: "Huu Nghi", country: VN, neighbour: CN}}
lanes:
  - id: in-1
    name: "Import lane 1"
    direction: inbound
    relay_board: board1
    cameras: [cam-front, cam-rear]
    seal_readers: [eseal-1]
cameras:
  - {{name: cam-front, type: http-mjpeg, url: "{camera_url}/front.mjpg", role: tractor,
     max_fps: 5, idle_fps: 5}}
  - {{name: cam-rear, type: http-mjpeg, url: "{camera_url}/rear.mjpg", role: container,
     max_fps: 5, idle_fps: 5}}
seal_readers:
  - {{name: eseal-1, type: eseal, port: "{seal_port}"}}
relay_boards:
  - name: board1
    lane: in-1
    port: "{relay_port}"
    baudrate: 115200
    timeout_s: 1.0
    retries: 3
    inter_frame_gap_ms: 1
    ipc_socket: "{tmp}/controller-{{name}}.sock"
    timing: {{clear_settle_s: 0.5, heartbeat_timeout_s: 1.5, poll_interval_s: 0.02,
              arm_travel_timeout_s: 3}}
plate_reader: {{threads: 1}}
passages: {{deadline: 20s, trailer_wait: 8s}}
mqtt:
  brokers: [{{host: 127.0.0.1, port: {mqtt_port}, tls: false}}]
  central_keys: [{{id: {support.CENTRAL_KID}, public_key: "{keys.central_pub}"}}]
  site_key: {{id: {support.SITE_KID}, private_key_file: {keys.site_key}}}
  backoff_min: 0.1s
  backoff_max: 1s
  alarm_interval: 0s
storage: {{dir: {storage_dir or tmp / "var"}, min_free_mb: {min_free_mb}}}
policy: {{max_cache_age: 1d}}
console: {console}
"""
    path = tmp / "gate-edge.yaml"
    path.write_text(text, encoding="utf-8")
    return path


class Gate:
    """The processes and simulators of one lane; ``close`` stops everything it started.

    ``edge_env`` and ``controller_env`` are added to the environment of ``gate-edge run`` and
    of ``gate-controller run`` (e.g. libfaketime's ``LD_PRELOAD`` to move one clock only).
    ``console=False`` runs gate-edge without the console and with /metrics on ``metrics_port``.
    """

    def __init__(self, tmp: Path, broker: Mosquitto, keys: support.Keys, *,
                 storage_dir: Path | None = None, min_free_mb: int = 500,
                 edge_env: Mapping[str, str] | None = None,
                 controller_env: Mapping[str, str] | None = None,
                 console: bool = True) -> None:
        self.tmp = tmp
        self.broker = broker
        self.keys = keys
        self.storage = storage_dir or tmp / "var"
        self.records_path = self.storage / "records.db"
        self.edge_env = dict(edge_env or {})
        self.controller_env = dict(controller_env or {})
        self._stack = contextlib.ExitStack()
        self.board = self._stack.enter_context(
            RelayBoardServer(BoardModel(travel_time_s=0.4), link=tmp / "relay1", seed=1))
        self.seal = self._stack.enter_context(ESealReaderSimulator(tmp / "eseal1"))
        self.camera = CameraServer("127.0.0.1", 0, size=(1280, 720), fps=5.0)
        self.camera.start()
        self._stack.callback(lambda: self.camera.stop())
        self.central = support.central_sim([broker.port], keys).start()
        self._stack.callback(self.central.stop)
        self.console_port = free_port()
        self.metrics_port = self.console_port if console else free_port()
        self.config = write_config(tmp, mqtt_port=broker.port, camera_url=self.camera.url,
                                   seal_port=self.seal.port.path, relay_port=self.board.port,
                                   console_port=self.console_port, keys=keys,
                                   storage_dir=self.storage, min_free_mb=min_free_mb,
                                   metrics_port=None if console else self.metrics_port)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, *args: str,
              extra_env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(REPO), "GATE_EDGE_LOG": "INFO",
               **(extra_env or {})}
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def add_user(self, name: str, role: str, password: str) -> None:
        subprocess.run([sys.executable, "-m", "edge", "users", "add", name, "--role", role,
                        "--password-stdin", "-c", str(self.config)], input=password.encode(),
                       cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True,
                       capture_output=True)

    def start_controller(self) -> None:
        self.spawn("gate-controller", "gate_controller", "run", "-c", str(self.config),
                   "-b", "board1", extra_env=self.controller_env)
        deadline = time.monotonic() + 20
        sock = self.tmp / "controller-board1.sock"
        while not sock.exists():
            assert time.monotonic() < deadline, self.log("gate-controller")
            time.sleep(0.05)

    def start_edge(self) -> None:
        runs = self.log("gate-edge").count("gate-edge is running")
        self.spawn("gate-edge", "edge", "run", "-c", str(self.config), extra_env=self.edge_env)
        wait_port(self.metrics_port, timeout=60)  # the console's port, unless it is off
        # Every part is up (seal readers have their ports open) only after this line.
        deadline = time.monotonic() + 60
        while self.log("gate-edge").count("gate-edge is running") <= runs:
            assert time.monotonic() < deadline, self.log("gate-edge")[-3000:]
            self.check_alive()
            time.sleep(0.05)

    def cut_camera(self, seconds: float) -> None:
        """The camera's network cable out for a while: the stream ends, then comes back."""
        port = self.camera.httpd.server_address[1]
        self.camera.stop()
        time.sleep(seconds)
        self.camera = CameraServer("127.0.0.1", int(port), size=(1280, 720), fps=5.0)
        self.camera.start()

    def publish_declarations(self, *docs: dict[str, Any]) -> None:
        self.central.publish_manifests(support.SITE, list(docs))

    def controller(self) -> ControllerClient:
        return self._stack.enter_context(ControllerClient(self.tmp / "controller-board1.sock"))

    def drive(self, truck: dict[str, Any], *, seal: str | None, seal_status: str = "I",
              lead_s: float = 2.5, **vehicle: Any) -> int:
        """A truck arrives: on camera first, seals read as it rolls in, then on the loop."""
        self.camera.sim.add(truck_from_json(truck))
        time.sleep(lead_s)
        if seal is not None:
            self.seal.read(seal, seal_status)
        return self.board.add_vehicle(**{"start_distance_m": 3.0, "speed_mps": 2.0,
                                         "stops": [[-1.0, 1.0]], **vehicle})

    def wait_idle(self, timeout: float = 40) -> None:
        """The last truck is gone and the arm is down: the lane is ready for the next one."""
        assert self.board.wait_for(lambda s: not s["vehicles"] and s["arm"] < 0.02,
                                   timeout=timeout), self.board.snapshot()

    def passages(self) -> list[dict[str, Any]]:
        return [m for m in self.central.messages(support.SITE, "passage")]

    def wait_passages(self, count: int, timeout: float = 40) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.passages()
            if len(got) >= count:
                return got
            self.check_alive()
            time.sleep(0.2)
        raise AssertionError(f"central got {len(self.passages())} passages, expected {count}\n"
                             + self.log("gate-edge")[-4000:])

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{self.log(name)}"

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_edge(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        proc = self.procs.pop("gate-edge")
        proc.send_signal(sig)
        return proc.wait(timeout)

    def close(self) -> None:
        for proc in reversed(list(self.procs.values())):   # gate-edge before its controller
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self._stack.close()


def gate(tmp: Path, broker: Mosquitto, keys: support.Keys, **options: Any) -> Iterator[Gate]:
    """A ``Gate`` for a fixture (``options`` as for ``Gate``), closed when the test ends."""
    g = Gate(tmp, broker, keys, **options)
    try:
        yield g
    finally:
        g.close()


def decision(msg: dict[str, Any]) -> dict[str, Any]:
    """The decision inside a passage message the central simulator received."""
    return dict(msg["body"]["decision"])
