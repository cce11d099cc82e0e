"""``gate-edge run``: every part of the checkpoint wired together, started in order.

Parts start in the order of docs/architecture.md ("Wiring the daemon") and stop in reverse:
stores, central sync, lanes, console (or, without it, the metrics listener), controller links,
seal readers, cameras. A part that
fails to start stops the ones already running and the error names the part and the fix.
On SIGTERM (systemd stop, Ctrl-C) the daemon lets a passage in progress be decided, recorded and
sent to its controller, gives the outbox a moment to drain, then stops. Barriers
never depend on this process staying up: gate-controller keeps every lane safe on its own
once heartbeats stop (DESIGN-NOTES §5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from edge.config import GateEdgeConfig
from edge.console.feed import CommandResult, LaneFeed, OfficerCommand
from edge.daemon.cameras import CameraRunner
from edge.daemon.clock import ClockWatch
from edge.daemon.controller import ControllerLink
from edge.daemon.evidence import EvidenceStore
from edge.daemon.lane import LaneRuntime
from edge.daemon.store import DaemonStore
from edge.domain.model import SealRead
from edge.metrics import GateMetrics
from edge.service_notify import HealthWatchdog, ServiceNotifier, task_alive
from edge.sync.downlink import LaneCommand

log = logging.getLogger(__name__)


@dataclass
class Part:
    """One start/stop pair of the daemon, named for logs and errors."""

    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


class StartupError(RuntimeError):
    """A part could not start; the message names it and what to check."""


class GateEdgeDaemon:
    """The whole checkpoint in one asyncio process (see module docstring)."""

    def __init__(self, cfg: GateEdgeConfig, *, metrics: GateMetrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.store = DaemonStore(cfg)
        self.feed = LaneFeed((lane.id, lane.name or lane.id) for lane in cfg.lanes)
        self.evidence = EvidenceStore(cfg.storage.evidence_dir, cfg.storage.min_free_mb)
        self.sync: Any = None
        self.console_server: Any = None
        #: The uvicorn server of the console or of the metrics listener, and its task.
        self._web_server: Any = None
        self._web_task: asyncio.Task[None] | None = None
        self.lanes: dict[str, LaneRuntime] = {}
        self.links: dict[str, ControllerLink] = {}
        self.cameras: list[CameraRunner] = []
        self.seals: Any = None
        self.parts: list[Part] = []
        self._started: list[Part] = []
        self._stop = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self.started_at = time.monotonic()
        self.clock = ClockWatch()
        # Children (camera workers, uvicorn) must not inherit NOTIFY_SOCKET and speak for us.
        self.notifier = ServiceNotifier(unset_environment=True)

    # -- assembly ------------------------------------------------------------------------------
    def build(self) -> None:
        """Create every part from the config (nothing starts yet)."""
        cfg = self.cfg
        if self.metrics is None and not cfg.console.enabled and cfg.console.metrics_served():
            self.metrics = GateMetrics(cfg.site.code, [lane.id for lane in cfg.lanes])
        self.parts.append(Part("stores", self.store.open, self.store.close))
        if cfg.mqtt.enabled:
            from edge.sync.service import SyncService
            _check_tls_files(cfg)
            try:
                self.sync = SyncService(cfg, on_command=self._central_command)
            except ValueError as exc:
                raise StartupError(
                    f"mqtt: {exc}. Key files named without a directory are read from "
                    "$CREDENTIALS_DIRECTORY (systemd LoadCredential=) or the working directory; "
                    "make a site key with 'gate-edge keys generate', or set mqtt.enabled: false "
                    "to run without a centre") from None
            self.parts.append(Part("central sync (MQTT)", self.sync.astart, self.sync.astop))
        boards = {b.lane: b for b in cfg.relay_boards}
        cams = {c.name: c for c in cfg.cameras}
        for lane in cfg.lanes:
            if not lane.enabled:
                log.warning("lane %s is disabled in the config (lanes[].enabled: false)", lane.id)
                continue
            runners = [CameraRunner(cams[name], cfg.plate_reader, lane.id)
                       for name in lane.cameras if name in cams]
            runtime = LaneRuntime(lane, cfg, store=self.store, feed=self.feed,
                                  evidence=self.evidence, cameras=list(runners),
                                  metrics=self.metrics, notify_outbox=self._notify_outbox)
            board = boards.get(lane.id)
            if board is not None:
                runtime.link = ControllerLink(board, runtime.on_event,
                                              self._link_state(board.name))
                self.links[board.name] = runtime.link
            else:
                log.warning("lane %s has no relay board: it reads and records but cannot open",
                            lane.id)
            for runner in runners:
                runner.sink = runtime.add_read
            self.cameras.extend(runners)
            self.lanes[lane.id] = runtime
            self.parts.append(Part(f"lane {lane.id}", runtime.start, runtime.stop))
        if cfg.console.enabled:
            self.parts.append(Part("officer console", self._start_console, self._stop_web))
        elif cfg.console.metrics_served():
            self.parts.append(Part("metrics listener", self._start_metrics, self._stop_web))
        for name, link in self.links.items():
            self.parts.append(Part(f"gate-controller link {name}", link.start, link.stop))
        if cfg.seal_readers:
            from edge.seals.service import SealReaderService
            self.seals = SealReaderService(cfg.seal_readers, cfg.lanes, on_alarm=self._seal_alarm,
                                           on_read=self._seal_read)
            self.parts.append(Part("seal readers", self.seals.start, self.seals.stop))
        for runner in self.cameras:
            self.parts.append(Part(f"camera {runner.name}", runner.start, runner.stop))
        self.parts.append(Part("health", self._start_health, self._stop_health))

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every part in order; on failure stop what started and raise StartupError."""
        self._loop = asyncio.get_running_loop()
        if not self.parts:
            try:
                self.build()
            except StartupError:
                raise
            except Exception as exc:
                raise StartupError(f"cannot set up the gate from its config: {exc}") from exc
        for part in self.parts:
            log.info("starting %s", part.name)
            try:
                await part.start()
            except Exception as exc:
                log.error("could not start %s: %s", part.name, exc)
                await self.stop()
                raise StartupError(f"{part.name} did not start: {exc}") from exc
            self._started.append(part)
        log.info("gate-edge is running: %d lane(s), %d camera(s), %d seal reader(s), %d relay "
                 "board(s)%s%s", len(self.lanes), len(self.cameras), len(self.cfg.seal_readers),
                 len(self.links), f", console on {self.console_url()}"
                 if self.console_server else "",
                 f", metrics on {self.metrics_url()}" if self.metrics_url() else "")

    async def stop(self) -> None:
        """Stop every started part, last first; a failing stop does not stop the others."""
        while self._started:
            part = self._started.pop()
            log.info("stopping %s", part.name)
            try:
                await asyncio.wait_for(part.stop(), timeout=30)
            except Exception:
                log.exception("stopping %s failed; going on with the others", part.name)

    async def drain(self) -> None:
        """Before stopping: let the trucks in progress be decided and the outbox drain."""
        # Cameras, seal readers and controller links keep running meanwhile: the truck at the
        # barrier is decided on full reads, and an open still reaches its controller.
        deadline = time.monotonic() + self.cfg.passages.drain_timeout.total_seconds()
        while time.monotonic() < deadline and any(r.pending() for r in self.lanes.values()):
            await asyncio.sleep(0.05)
        if self.sync is not None:
            while time.monotonic() < deadline and self.sync.health().outbox_depth > 0 \
                    and self.sync.health().connected:
                await asyncio.sleep(0.1)
            depth = self.sync.health().outbox_depth
            if depth > 0:
                log.warning("stopping with %d message(s) in the outbox; they are on disk and go "
                            "up after the next start", depth)

    def request_stop(self) -> None:
        """Ask ``serve`` to shut down (signal handlers, tests)."""
        self._stop.set()

    async def serve(self) -> None:
        """Start, run until SIGTERM/SIGINT or ``request_stop``, drain, stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        status = f"{len(self.lanes)} lane(s)"
        if self.console_server:
            status += f", console {self.console_url()}"
        elif self.metrics_url():
            status += f", metrics {self.metrics_url()}"
        self.notifier.ready(status)
        try:
            await self._stop.wait()
            log.info("stop requested: finishing passages in progress")
            self.notifier.stopping("finishing passages in progress")
            await self.drain()
        finally:
            await self.stop()

    # -- glue ----------------------------------------------------------------------------------
    def console_url(self) -> str:
        """Where officers open the console."""
        return self._url(self.cfg.console.host, self.cfg.console.port)

    def _url(self, host: str, port: int) -> str:
        """A URL of our web server to print (a wildcard listen address becomes loopback)."""
        scheme = "https" if self.cfg.console.tls_certfile else "http"
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - a URL to print
        return f"{scheme}://{host}:{port}/"

    def metrics_url(self) -> str | None:
        """Where Prometheus scrapes this daemon, or None when /metrics is not served."""
        c = self.cfg.console
        if not c.metrics_served():
            return None
        if c.enabled:
            return self.console_url() + "metrics"
        assert c.metrics_port is not None  # metrics_served() with the console off
        return self._url(c.metrics_host, c.metrics_port) + "metrics"

    async def _start_console(self) -> None:
        from edge.console.app import create_app
        kwargs: dict[str, Any] = {"feed": self.feed, "commands": self}
        if self.metrics is not None:
            kwargs["metrics"] = self.metrics
        c = self.cfg.console
        self.console_server = await self._start_web(
            "console", create_app(self.cfg, **kwargs), c.host, c.port, "console.port")

    async def _start_metrics(self) -> None:
        # Console off: a web server with GET /metrics alone, the console's own route and guard.
        from edge.console.scrape import create_metrics_app
        assert self.metrics is not None  # build() made one for the listener
        c = self.cfg.console
        assert c.metrics_port is not None  # metrics_served() with the console off
        app = create_metrics_app(c, self.metrics)
        await self._start_web("metrics listener", app, c.metrics_host, c.metrics_port,
                              "console.metrics_port")
        log.info("serving Prometheus metrics on %s (console is off; console.metrics_allow "
                 "decides who may scrape)", self.metrics_url())

    async def _start_web(self, what: str, app: Any, host: str, port: int, key: str) -> Any:
        """Run ``app`` under uvicorn as a task of this loop; return once it listens."""
        from edge.console.app import serve
        c = self.cfg.console
        server = serve(app, host, port, certfile=c.tls_certfile, keyfile=c.tls_keyfile)
        task = asyncio.create_task(_serve_until_stopped(server), name=what)
        self._web_server, self._web_task = server, task
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        if task.done():
            exc = task.exception() if not task.cancelled() else None
            raise RuntimeError(f"{what} could not listen on {host}:{port} ({exc or 'exited'})"
                               f"; change {key} or stop what uses it")
        return server

    async def _stop_web(self) -> None:
        if self._web_server is not None and self._web_task is not None:
            self._web_server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._web_task, timeout=10)

    async def send(self, command: OfficerCommand) -> CommandResult:
        """``OfficerCommands`` for the console: forward to the lane's gate-controller."""
        lane = self.lanes.get(command.lane)
        if lane is None:
            return CommandResult(False, f"lane {command.lane} is not running in this gate-edge")
        return await lane.officer(command)

    def _central_command(self, command: LaneCommand) -> None:
        lane = self.lanes.get(command.lane)
        if lane is None:
            log.warning("central command for unknown or disabled lane %s ignored", command.lane)
            return
        self._spawn(lane.central(command))

    def _seal_read(self, read: SealRead) -> None:
        # Called from a seal reader thread: hop onto the loop.
        lane = self.lanes.get(read.lane)
        if lane is not None:
            self._loop.call_soon_threadsafe(lane.add_read, read, None)

    def _seal_alarm(self, alarm: Any) -> None:
        self.feed.set_device(alarm.reader, "seal reader", not alarm.active, alarm.message)
        if alarm.active:
            code, detail = str(alarm.kind), {"reader": alarm.reader, "lane": alarm.lane}
            self._loop.call_soon_threadsafe(
                lambda: self._spawn(self._store_alarm(code, alarm.message, detail)))

    async def _store_alarm(self, code: str, message: str, detail: dict[str, Any]) -> None:
        try:
            if await self.store.alarm(code, message, detail=detail):
                self._notify_outbox()
        except Exception:
            log.exception("alarm %s not recorded", code)

    def _link_state(self, board: str) -> Callable[[bool, str], None]:
        def report(up: bool, detail: str) -> None:
            self.feed.set_device(board, "relay board", up, detail)
            if self.metrics is not None:
                self.metrics.set_device_up(board, "relay_board", up)
        return report

    def _notify_outbox(self) -> None:
        if self.sync is not None:
            self.sync.notify_outbox()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _start_health(self) -> None:
        self._health_task = asyncio.create_task(self._health_loop(), name="health")
        # The watchdog is fed only while what a restart would cure is healthy (the loop and
        # its health task); devices and the broker are advisories: a restart cannot fix a
        # cut cable, and must not turn an outage into a restart loop.
        guard = HealthWatchdog(
            self.notifier, {"health loop": task_alive(self._health_task)},
            advisories={"devices": lambda: "; ".join(self.health_problems()) or None})
        self._watchdog_task = asyncio.create_task(guard.run(), name="watchdog")

    async def _stop_health(self) -> None:
        for task in (self._watchdog_task, self._health_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _health_loop(self) -> None:
        """Every second: clock steps, broker state, outbox depth, cache age, camera workers."""
        while True:
            try:
                await self._health_once()
            except Exception:
                log.exception("health check failed")
            await asyncio.sleep(1.0)

    async def _health_once(self) -> None:
        step = self.clock.check()
        if step is not None:
            message = self.clock.describe(step)
            log.warning("%s", message)
            self._spawn(self._store_alarm("CLOCK_STEP", message, {"step_s": round(step, 3)}))
        if self.sync is not None:
            h = self.sync.health()
            self.feed.set_broker(h.connected, h.broker or h.last_error)
            if self.metrics is not None:
                self.metrics.set_broker_connected(h.connected)
                self.metrics.set_outbox_depth(max(h.outbox_depth, 0))
        elif self.metrics is not None:
            self.metrics.set_outbox_depth(await self.store.outbox_depth())
        if self.metrics is not None:
            signed = await self.store.cache_signed_at()
            from edge.domain.model import utcnow
            self.metrics.set_cache_age((utcnow() - signed).total_seconds() if signed else None)
        for runner in self.cameras:
            ok, detail = runner.health()
            self.feed.set_device(runner.name, "camera", ok, detail)
            if self.metrics is not None:
                self.metrics.set_device_up(runner.name, "camera", ok)

    def health_problems(self) -> list[str]:
        """What is wrong right now (empty: healthy). Feeds the systemd watchdog."""
        problems = []
        for name, link in self.links.items():
            if not link.connected:
                problems.append(f"gate-controller {name}: {link.last_error}")
        for runner in self.cameras:
            ok, detail = runner.health()
            if not ok:
                problems.append(f"camera {runner.name}: {detail}")
        return problems


async def _serve_until_stopped(server: Any) -> None:
    """``server.serve()``, with uvicorn's exit on a failed bind turned into an exception.

    uvicorn calls ``sys.exit(3)`` when it cannot listen; that SystemExit would leave the task
    and end the whole event loop with a traceback, before ``_start_web`` could name the key.
    """
    try:
        await server.serve()
    except SystemExit as exc:
        raise RuntimeError(f"uvicorn exited with status {exc.code}") from None


def _check_tls_files(cfg: GateEdgeConfig) -> None:
    """Name the missing TLS file and its key (the TLS library only says 'No such file')."""
    from edge.config.mqtt import credential_path
    tls = cfg.mqtt.tls
    for key in ("ca_file", "cert_file", "key_file"):
        value = getattr(tls, key, None) if tls is not None else None
        if value is not None and not credential_path(value).is_file():
            raise StartupError(
                f"mqtt.tls.{key}: {value} does not exist (relative names are read from "
                "$CREDENTIALS_DIRECTORY, then the working directory); install the file, or "
                "remove the key if the broker does not need it")
