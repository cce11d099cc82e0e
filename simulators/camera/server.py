"""`gate-sim camera`: an HTTP MJPEG camera that films simulated trucks.

Endpoints (one server can stand for a lane's front and rear cameras):
- ``GET /front.mjpg``, ``GET /rear.mjpg``: ``multipart/x-mixed-replace`` MJPEG streams, as IP
  cameras serve them (OpenCV/FFmpeg read them like a real camera);
- ``GET /front.jpg``, ``GET /rear.jpg``: one snapshot;
- ``POST /trucks``: JSON truck ``{"tractor_plate": "51C12345", "trailer_plate": "51R01234",
  "containers": ["MSKU1234565"], "condition": "rain", "duration_s": 6}`` queued to drive in
  (``approach_s``: seconds to reach the stop line, default ``duration_s / 1.3``; the truck then
  waits there until ``duration_s`` is over);
- ``POST /clear``: empty lane; ``GET /state``: the truck on screen (ground truth for the
  scenario runner and tests — gate-edge itself only ever sees the pixels).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from simulators.camera.scene import CONDITIONS, PlateSpec, TruckView, render

log = logging.getLogger(__name__)

BOUNDARY = "gatesimframe"


@dataclass
class TruckRun:
    """A truck driving through the picture for `duration_s` seconds."""

    truck_front: TruckView
    truck_rear: TruckView
    duration_s: float
    started: float = 0.0
    seed: int = 0
    approach_s: float | None = None   # time to reach the stop line; default duration_s / 1.3


def _plate(value: Any, *, trailer: bool = False) -> PlateSpec | None:
    if not value:
        return None
    if isinstance(value, dict):
        return PlateSpec(str(value["text"]), "CN" if value.get("country") == "CN" else "VN",
                         int(value.get("rows", 2 if trailer else 1)),
                         bool(value.get("yellow", True)))
    text = str(value)
    if not text[0].isascii():
        return PlateSpec(text, "CN", 1, False)
    return PlateSpec(text, "VN", 2 if trailer else 1, True)


def truck_from_json(data: dict[str, Any], seed: int = 0) -> TruckRun:
    """Build a run from the JSON a scenario or `POST /trucks` gives; raises ValueError."""
    unknown = set(data) - {"tractor_plate", "trailer_plate", "containers", "condition",
                           "duration_s", "approach_s", "body_colour"}
    if unknown:
        raise ValueError(f"unknown truck keys {sorted(unknown)}")
    condition = data.get("condition", "daylight")
    if condition not in CONDITIONS:
        raise ValueError(f"condition {condition!r} is not one of {list(CONDITIONS)}")
    colour = tuple(int(c) for c in data.get("body_colour", (40, 90, 160)))
    common = {"tractor_plate": _plate(data.get("tractor_plate")),
              "trailer_plate": _plate(data.get("trailer_plate"), trailer=True),
              "containers": tuple(str(c) for c in data.get("containers", ())),
              "condition": condition, "body_colour": colour}
    duration = float(data.get("duration_s", 6.0))
    approach = float(data["approach_s"]) if data.get("approach_s") is not None else None
    if duration <= 0 or (approach is not None and not 0 < approach <= duration):
        raise ValueError("duration_s must be > 0 and approach_s within (0, duration_s]")
    return TruckRun(TruckView(view="front", **common),
                    TruckView(view="rear", **common), duration, seed=seed, approach_s=approach)


class CameraSimulator:
    """Renders frames for the front and rear views at a fixed rate in a background thread."""

    def __init__(self, *, size: tuple[int, int] = (1280, 720), fps: float = 5.0,
                 quality: int = 85, crops: dict[str, np.ndarray] | None = None) -> None:
        self.size = size
        self.fps = fps
        self.quality = quality
        self.crops = crops or {}
        self.queue: deque[TruckRun] = deque()
        self.current: TruckRun | None = None
        self.frames: dict[str, bytes] = {}
        self.frame_no = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera-sim", daemon=True)
        self._rng = random.Random(7)

    def start(self) -> None:
        """Start rendering."""
        self._render_once()
        self._thread.start()

    def stop(self) -> None:
        """Stop rendering and wake every waiting client."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def add(self, run: TruckRun) -> None:
        """Queue a truck."""
        run.seed = run.seed or self._rng.randint(1, 2**31)
        with self._cond:
            self.queue.append(run)

    def clear(self) -> None:
        """Empty the lane and the queue."""
        with self._cond:
            self.queue.clear()
            self.current = None

    def state(self) -> dict[str, Any]:
        """Ground truth of what is on screen (never used by gate-edge)."""
        with self._cond:
            cur = self.current
            out: dict[str, Any] = {"frame": self.frame_no, "queued": len(self.queue)}
        if cur is not None:
            t = cur.truck_front
            out["truck"] = {
                "tractor_plate": t.tractor_plate.text if t.tractor_plate else None,
                "trailer_plate": t.trailer_plate.text if t.trailer_plate else None,
                "containers": list(t.containers), "condition": t.condition,
                "progress": round(min(1.0, (time.monotonic() - cur.started) / cur.duration_s), 3),
            }
        return out

    def _render_once(self) -> None:
        now = time.monotonic()
        with self._cond:
            if self.current is not None and now - self.current.started > self.current.duration_s:
                self.current = None
            if self.current is None and self.queue:
                self.current = self.queue.popleft()
                self.current.started = now
            cur = self.current
        frames = {}
        for view in ("front", "rear"):
            if cur is None:
                img = render(TruckView(view=view), size=self.size, progress=0.0, seed=1,
                             empty=True).image
            else:
                approach = cur.approach_s or cur.duration_s / 1.3
                progress = min(1.0, (now - cur.started) / approach)
                truck = cur.truck_front if view == "front" else cur.truck_rear
                img = render(truck, size=self.size, progress=progress,
                             seed=cur.seed + self.frame_no, crops=self.crops).image
            ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if ok:
                frames[view] = jpg.tobytes()
        with self._cond:
            self.frames = frames
            self.frame_no += 1
            self._cond.notify_all()

    def _run(self) -> None:
        period = 1.0 / self.fps
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self._render_once()
            except Exception:  # a bad truck must not kill the camera
                log.exception("rendering failed; dropping the current truck")
                with self._cond:
                    self.current = None
            self._stop.wait(max(0.0, period - (time.monotonic() - t0)))

    def wait_frame(self, after: int, timeout: float = 5.0) -> tuple[int, dict[str, bytes]]:
        """Block until a frame newer than `after` exists (or stop); returns (number, frames)."""
        with self._cond:
            self._cond.wait_for(lambda: self.frame_no > after or self._stop.is_set(), timeout)
            return self.frame_no, self.frames


def make_handler(sim: CameraSimulator) -> type[BaseHTTPRequestHandler]:
    """HTTP handler class bound to one simulator."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, obj: Any) -> None:
            self._send(code, json.dumps(obj, ensure_ascii=False).encode())

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/state":
                self._json(200, sim.state())
            elif path in ("/front.jpg", "/rear.jpg"):
                _, frames = sim.wait_frame(-1, 0)
                self._send(200, frames[path[1:-4]], "image/jpeg")
            elif path in ("/front.mjpg", "/rear.mjpg"):
                self._stream(path[1:-5])
            else:
                self._json(404, {"error": f"no such path {path}; try /front.mjpg"})

        def _stream(self, view: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            seen = -1
            try:
                while not sim._stop.is_set():
                    seen, frames = sim.wait_frame(seen)
                    jpg = frames.get(view)
                    if jpg is None:
                        continue
                    self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                     f"Content-Length: {len(jpg)}\r\n\r\n".encode())
                    self.wfile.write(jpg + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # client went away
            self.close_connection = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path == "/clear":
                sim.clear()
                self._json(200, {"ok": True})
                return
            if self.path != "/trucks":
                self._json(404, {"error": f"no such path {self.path}"})
                return
            try:
                data = json.loads(raw or b"{}")
                items = data if isinstance(data, list) else [data]
                for item in items:
                    sim.add(truck_from_json(item))
            except (ValueError, KeyError, TypeError) as exc:
                self._json(400, {"error": str(exc)})
                return
            self._json(202, {"queued": len(items)})

    return Handler


class CameraServer:
    """The simulator plus its HTTP server, started and stopped as one."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        self.sim = CameraSimulator(**kwargs)
        self.httpd = ThreadingHTTPServer((host, port), make_handler(self.sim))
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="camera-http",
                                        daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8554."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> CameraServer:
        """Start rendering and serving."""
        self.sim.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and rendering; closes the listening socket."""
        self.sim.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


def load_scenario(path: Path) -> list[TruckRun]:
    """A scenario file: JSON (or YAML) list of trucks, played in order."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        from ruamel.yaml import YAML

        data = YAML(typ="safe").load(text)
    else:
        data = json.loads(text)
    trucks = data.get("trucks", data) if isinstance(data, dict) else data
    return [truck_from_json(t, seed=i + 1) for i, t in enumerate(trucks)]
