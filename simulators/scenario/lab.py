"""The lab: a whole simulated checkpoint on one machine, started in order, stopped in reverse.

Every part is the real program in its own process, on its real wire protocol: Mosquitto, the
central customs simulator (MQTT 5), per lane a relay board on a pty with its gate-controller,
an HTTP MJPEG camera and the seal readers on ptys, and finally ``gate-edge run`` configured for
all of it. Nothing hands gate-edge a plate or a decision: it reads pixels and serial bytes.

``Lab`` is a context manager. ``__exit__`` (also on Ctrl-C and on a failing test) stops the
processes in the reverse order of their start: SIGTERM, then SIGKILL after a grace period.
Each child runs in its own session, so a Ctrl-C at the terminal reaches only the lab, which
then shuts the children down in order instead of all of them dying at once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from edge.sync.signing import generate_key
from gate_controller.client import ControllerClient
from simulators.central.broker import MOSQUITTO, Mosquitto, free_port
from simulators.scenario.labconfig import CAMERA_FPS, gate_edge_config
from simulators.scenario.model import LaneSpec, LoadedScenario

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
CENTRAL_KID = "central-lab"


class LabError(RuntimeError):
    """A part of the lab did not start; the message names it and ends with its log."""


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def wait_until(what: str, check: Callable[[], bool], timeout: float, log_path: Path | None = None,
               proc: LabProcess | None = None) -> None:
    """Poll ``check`` until it holds; LabError (with the part's log) on timeout or early exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, TimeoutError, sqlite3.Error):
            if check():
                return
        if proc is not None and proc.exited():
            raise LabError(f"{what}: the process exited with status {proc.returncode()}\n"
                           f"--- {proc.log_path} ---\n{_tail(proc.log_path)}")
        time.sleep(0.1)
    tail = f"\n--- {log_path} ---\n{_tail(log_path)}" if log_path else ""
    raise LabError(f"{what}: not ready after {timeout:.0f} s{tail}")


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the lab process dies without stopping us (kill -9, OOM).

    Linux prctl(PR_SET_PDEATHSIG); elsewhere the lab's own stop() is the only clean-up.
    """
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


@dataclass
class LabProcess:
    """One child process with its log file; started in its own session."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LabProcess:
        """Start the process, stdout and stderr into the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            out.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env, cwd=REPO,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        log.info("started %s (pid %d)", self.name, self.proc.pid)
        return self

    def exited(self) -> bool:
        """Whether the process has ended."""
        return self.proc is not None and self.proc.poll() is not None

    def returncode(self) -> int | None:
        """Exit status, None while running."""
        return None if self.proc is None else self.proc.poll()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            log.warning("%s ignored SIGTERM for %.0f s; killing it", self.name, grace)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)
        log.info("stopped %s (status %s)", self.name, proc.returncode)


@dataclass
class LaneRig:
    """The simulated devices of one lane and where to reach them."""

    lane: LaneSpec
    board: str
    relay_link: Path
    relay_control: Path
    controller_socket: Path
    camera_port: int
    eseal_link: Path | None
    eseal_control: Path | None
    bolt_link: Path | None
    bolt_control: Path | None
    processes: dict[str, LabProcess] = field(default_factory=dict)

    @property
    def camera_url(self) -> str:
        """Base URL of the lane's camera simulator."""
        return f"http://127.0.0.1:{self.camera_port}"


def _port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.3):
        return True


def stream_clients(port: int) -> int:
    """Established TCP connections to a local port (Linux /proc/net/tcp*).

    A camera worker opens its MJPEG stream only after its detector and OCR models are loaded
    (edge/plates/worker.py), so two clients on a lane's camera means both readers are warm.
    """
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def _streaming(port: int) -> bool:
    return stream_clients(port) >= 2


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1.0) as answer:  # noqa: S310 (loopback only)
        return bool(answer.status == 200)


class Lab:
    """Starts the whole simulated checkpoint for one scenario (see the module docstring)."""

    def __init__(self, scenario: LoadedScenario, workdir: Path, *, console_port: int | None = None,
                 log_level: str = "INFO", edge_command: list[str] | None = None,
                 start_edge: bool = True) -> None:
        self.scenario = scenario
        self.spec = scenario.spec
        self.dir = workdir.resolve()
        self.console_port = console_port or free_port()
        self.log_level = log_level
        self.edge_command = edge_command
        self.start_edge = start_edge
        self.broker: Mosquitto | None = None
        self.broker_proc: LabProcess | None = None
        self.central: LabProcess | None = None
        self.edge: LabProcess | None = None
        self.rigs: dict[str, LaneRig] = {}
        self._stack: list[tuple[str, Callable[[], None]]] = []
        self.config_path = self.dir / "gate-edge.yaml"
        self.received_path = self.dir / "central-received.jsonl"
        self.env = self._child_env()

    # -- paths -----------------------------------------------------------------------------
    @property
    def site(self) -> str:
        """Checkpoint code."""
        return self.spec.site.code

    @property
    def storage_dir(self) -> Path:
        """gate-edge's storage.dir (cache.db, records.db, evidence/)."""
        return self.dir / "var"

    @property
    def console_url(self) -> str:
        """Where officers open the console."""
        return f"http://127.0.0.1:{self.console_port}/"

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # The worktree's packages, not whichever copy an editable install points at.
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                         else "")
        env.update({"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "PYTHONUNBUFFERED": "1",
                    "GATE_EDGE_CONSOLE_SECRET": os.urandom(32).hex()})
        return env

    def _python(self, module: str, *args: str) -> list[str]:
        return [sys.executable, "-m", module, *args]

    # -- start and stop --------------------------------------------------------------------
    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start every part in order; each is healthy before the next starts."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("run", "dev", "logs", "keys", "data"):
            (self.dir / sub).mkdir(exist_ok=True)
        self._plan_rigs()
        self._start_broker()
        self._make_keys()
        self._write_documents()
        self._write_config()
        self._start_central()
        for rig in self.rigs.values():
            self._start_relay_board(rig)
        for rig in self.rigs.values():
            self._start_controller(rig)
        for rig in self.rigs.values():
            self._start_camera(rig)
        for rig in self.rigs.values():
            self._start_seal_readers(rig)
        if self.start_edge:   # False: a bench of devices for a gate-edge run by hand
            self._start_edge()

    def stop(self) -> None:
        """Stop everything started so far, newest first; never raises."""
        while self._stack:
            name, stopper = self._stack.pop()
            try:
                stopper()
            except Exception:
                log.exception("stopping %s failed", name)

    def _spawn(self, name: str, argv: list[str]) -> LabProcess:
        proc = LabProcess(name, argv, self.dir / "logs" / f"{name}.log", self.env).start()
        self._stack.append((name, proc.stop))
        return proc

    # -- the parts, in start order --------------------------------------------------------
    def _plan_rigs(self) -> None:
        run, dev = self.dir / "run", self.dir / "dev"
        for lane in self.spec.lanes:
            board = f"board-{lane.id}"
            self.rigs[lane.id] = LaneRig(
                lane=lane, board=board, relay_link=dev / f"relay-{lane.id}",
                relay_control=run / f"relay-{lane.id}.ctl",
                controller_socket=run / f"controller-{board}.sock", camera_port=free_port(),
                eseal_link=dev / f"eseal-{lane.id}" if lane.eseal_reader else None,
                eseal_control=run / f"eseal-{lane.id}.ctl" if lane.eseal_reader else None,
                bolt_link=dev / f"bolt-{lane.id}" if lane.bolt_scanner else None,
                bolt_control=run / f"bolt-{lane.id}.ctl" if lane.bolt_scanner else None)

    def _start_broker(self) -> None:
        # Mosquitto writes the config (persistence, queue limits, user); the process itself is
        # a LabProcess so it gets its own session like every other part: a Ctrl-C at the
        # terminal must not kill the broker before gate-edge has drained its outbox.
        self.broker = Mosquitto(self.dir / "broker", persistence=True)
        self.broker.workdir.mkdir(parents=True, exist_ok=True)
        self.broker.conf_path.write_text(self.broker.config_text(), encoding="utf-8")
        self.broker_up()

    def _make_keys(self) -> None:
        keys = self.dir / "keys"
        self.central_key = generate_key(keys / "central.key", overwrite=True)
        self.site_key = generate_key(keys / "site.key", overwrite=True)

    def _write_documents(self) -> None:
        data = self.dir / "data"
        self.declarations_path = data / "declarations.jsonl"
        self.hotlist_path = data / "hotlist.jsonl"
        for path, records in ((self.declarations_path, self.scenario.declarations),
                              (self.hotlist_path, self.scenario.hotlist)):
            path.write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n"
                                    for r in records), encoding="utf-8")

    def _write_config(self) -> None:
        assert self.broker is not None
        text = gate_edge_config(self, broker_port=self.broker.port)
        self.config_path.write_text(text, encoding="utf-8")

    def _start_central(self) -> None:
        assert self.broker is not None
        args = ["central", "-b", f"127.0.0.1:{self.broker.port}", "-s", self.site,
                "--key", str(self.central_key.private_path), "--kid", CENTRAL_KID,
                "--edge-key", f"{self.site}={self.site_kid}:{self.site_key.public_path}",
                "--export", str(self.received_path), "--heartbeat", "2"]
        if self.scenario.declarations:
            args += ["--manifests", str(self.declarations_path)]
        if self.scenario.hotlist:
            args += ["--hotlist", str(self.hotlist_path)]
        self.central = self._spawn("central", self._python("simulators.cli", *args))
        central = self.central
        wait_until("gate-sim central", lambda: "published" in _tail(central.log_path, 100_000),
                   20, central.log_path, central)

    @property
    def site_kid(self) -> str:
        """Key id of the checkpoint's signing key."""
        return f"{self.site}-lab"

    def _start_relay_board(self, rig: LaneRig) -> None:
        name = f"relay-board-{rig.lane.id}"
        proc = self._spawn(name, self._python(
            "simulators.cli", "relay-board", "--baud", "115200", "--link", str(rig.relay_link),
            "--control", str(rig.relay_control)))
        rig.processes["relay"] = proc
        wait_until(name, lambda: rig.relay_link.exists() and rig.relay_control.exists(), 20,
                   proc.log_path, proc)

    def _start_controller(self, rig: LaneRig) -> None:
        name = f"gate-controller-{rig.board}"
        proc = self._spawn(name, self._python(
            "gate_controller", "run", "--config", str(self.config_path), "--board", rig.board,
            "--log-level", self.log_level))
        rig.processes["controller"] = proc

        def answers() -> bool:
            with ControllerClient(rig.controller_socket, timeout=2.0) as client:
                return client.status().get("state") is not None
        wait_until(name, answers, 30, proc.log_path, proc)

    def _start_camera(self, rig: LaneRig) -> None:
        name = f"camera-{rig.lane.id}"
        proc = self._spawn(name, self._camera_argv(rig))
        rig.processes["camera"] = proc
        wait_until(name, lambda: _http_ok(rig.camera_url + "/state"), 30, proc.log_path, proc)

    def _camera_argv(self, rig: LaneRig) -> list[str]:
        return self._python("simulators.cli", "camera", "--port", str(rig.camera_port),
                            "--size", "1280x720", "--fps", str(CAMERA_FPS))

    def _start_seal_readers(self, rig: LaneRig) -> None:
        for kind, link, control in (("eseal", rig.eseal_link, rig.eseal_control),
                                    ("bolt", rig.bolt_link, rig.bolt_control)):
            if link is None or control is None:
                continue
            name = f"{kind}-{rig.lane.id}"
            command = "seal-reader" if kind == "eseal" else "barcode-scanner"
            extra = ["--reader-id", f"R-{rig.lane.id}"] if kind == "eseal" else []
            proc = self._spawn(name, self._python("simulators.cli", command, "--link", str(link),
                                                  "--control", str(control), *extra))
            rig.processes[kind] = proc

            def ready(link: Path = link, control: Path = control) -> bool:
                return link.exists() and control.exists()
            wait_until(name, ready, 20, proc.log_path, proc)

    def _start_edge(self) -> None:
        argv = self.edge_command or self._python(
            "edge", "--log-level", self.log_level, "run", "--config", str(self.config_path))
        self.edge = self._spawn("gate-edge", argv)
        edge = self.edge
        # The daemon logs this once every part has started (seal readers have their ports
        # open: a read sent before that would be lost in the pty).
        wait_until("gate-edge: every part started",
                   lambda: "gate-edge is running" in _tail(edge.log_path, 1_000_000), 90,
                   edge.log_path, edge)
        wait_until("gate-edge: officer console", lambda: _port_open(self.console_port), 30,
                   edge.log_path, edge)
        for rig in self.rigs.values():
            def linked(rig: LaneRig = rig) -> bool:
                with ControllerClient(rig.controller_socket, timeout=2.0) as client:
                    return bool(client.status().get("link_alive"))
            wait_until(f"gate-edge heartbeats to {rig.board}", linked, 30, edge.log_path, edge)
        wait_until("gate-edge: declarations and hotlist from the centre", self._cache_loaded, 60,
                   edge.log_path, edge)
        for rig in self.rigs.values():
            port = rig.camera_port
            wait_until(f"gate-edge: camera readers of {rig.lane.id} streaming",
                       functools.partial(_streaming, port), 120, edge.log_path, edge)

    def _cache_loaded(self) -> bool:
        path = self.storage_dir / "cache.db"
        if not path.exists():
            return False
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=1)) as db:
            manifests = db.execute("SELECT count(*) FROM manifests").fetchone()[0]
            hotlist = db.execute("SELECT count(*) FROM hotlist").fetchone()[0]
            fresh = db.execute("SELECT count(*) FROM cache_meta").fetchone()[0]
        return bool(manifests >= len(self.scenario.declarations)
                    and hotlist >= len(self.scenario.hotlist) and fresh)

    # -- faults the runner injects --------------------------------------------------------
    def broker_down(self) -> None:
        """Stop the broker (SIGTERM: it saves its persistence file); the port stays its own."""
        if self.broker_proc is not None:
            self.broker_proc.stop()

    def broker_up(self) -> None:
        """Start the broker (again) on its port and wait until it accepts connections."""
        assert self.broker is not None
        port = self.broker.port
        self.broker_proc = proc = self._spawn("mosquitto", [MOSQUITTO, "-c",
                                                            str(self.broker.conf_path)])
        wait_until("mosquitto", lambda: _port_open(port), 15, proc.log_path, proc)

    def camera_down(self, lane: str) -> None:
        """Cut a lane's camera: its process stops and its port goes dark."""
        self.rigs[lane].processes["camera"].stop(grace=3)

    def camera_up(self, lane: str) -> None:
        """Bring a cut camera back on the same port."""
        rig = self.rigs[lane]
        proc = self._spawn(f"camera-{lane}", self._camera_argv(rig))
        rig.processes["camera"] = proc
        wait_until(f"camera-{lane}", lambda: _http_ok(rig.camera_url + "/state"), 30,
                   proc.log_path, proc)

    def logs(self) -> dict[str, Path]:
        """Every log file of the lab, by part name."""
        return {p.stem: p for p in sorted((self.dir / "logs").glob("*.log"))}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file that may still be being written (a torn last line is skipped)."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


