"""Building the console app and serving it, from the daemon or stand-alone.

The daemon calls ``create_app(cfg, feed=..., commands=...)`` and ``serve(app, host, port)``,
then runs the returned ``uvicorn.Server`` as a task in its own loop. ``gate-edge console``
does the same without a daemon: it watches ``records.db`` for passages other processes write
and cannot move barriers (``NoGateController``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from edge.config import GateEdgeConfig
from edge.console import api, pages, scrape
from edge.console.errors import Conflict, FieldErrors, Forbidden, NotFound
from edge.console.feed import CommandResult, LaneFeed, NoGateController, OfficerCommand, OfficerCommands
from edge.console.security import (
    SESSION_COOKIE,
    BodyLimit,
    CsrfRejected,
    LoginRequired,
    LoginThrottle,
    PermissionDenied,
    SecurityHeaders,
)
from edge.console.service import ConsoleService
from edge.console.templating import templates
from edge.metrics import GateMetrics
from edge.store.records import PassageRow

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def create_app(cfg: GateEdgeConfig, *, records_path: Path | None = None,
               cache_path: Path | None = None, evidence_dir: Path | None = None,
               feed: LaneFeed | None = None, commands: OfficerCommands | None = None,
               watch_records: bool = False, session_secret: str | None = None,
               metrics: GateMetrics | None = None) -> FastAPI:
    """The officer console over the configured stores.

    ``feed`` is the daemon's live lane feed (a fresh one if None); ``commands`` forwards officer
    barrier orders to gate-controller (refused with a reason if None). ``watch_records`` polls
    ``records.db`` for passages written by another process (stand-alone console, demo).
    ``metrics`` is the daemon's GateMetrics, served at ``/metrics`` and charted on the health
    page; without one the console makes its own and fills the outbox and cache gauges from the
    files at each scrape (there is no daemon to report them).
    """
    console = cfg.console
    feed = feed or LaneFeed((lane.id, lane.name or lane.id) for lane in cfg.lanes)
    sender: OfficerCommands = commands or NoGateController()

    def send_command(command: OfficerCommand) -> CommandResult:
        # Called from a FastAPI worker thread: hand the coroutine to the event loop.
        return anyio.from_thread.run(sender.send, command)

    service = ConsoleService(
        cfg, records_path or cfg.storage.records_path, cache_path or cfg.storage.cache_path,
        evidence_dir or console.evidence_dir or cfg.storage.evidence_dir, feed, send_command)
    _prime_lanes(service)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(service.open)
        watcher = asyncio.create_task(_watch(service)) if watch_records else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await asyncio.to_thread(service.close)

    app = FastAPI(
        title="gate-edge officer console",
        version="1",
        description="Live lanes, passages, referrals and officer overrides of a customs gate. "
                    "Log in with POST /api/v1/session; send the returned csrf_token as "
                    "X-CSRF-Token on every POST.",
        docs_url=None, redoc_url=None, openapi_url="/api/v1/openapi.json", lifespan=lifespan,
    )
    app.state.service = service
    app.state.feed = feed
    app.state.metrics = metrics or GateMetrics(cfg.site.code, [lane.id for lane in cfg.lanes])
    app.state.metrics_refresh = None if metrics else _storage_refresher(service, app.state.metrics)
    app.state.throttle = LoginThrottle(console.login_attempts_per_minute)
    app.add_middleware(SessionMiddleware, secret_key=session_secret or console.session_secret(),
                       session_cookie=SESSION_COOKIE,
                       max_age=int(console.session_max_age.total_seconds()),
                       same_site="strict", https_only=console.secure_cookies)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, max_bytes=console.max_body_bytes)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    scrape.attach(app, console, app.state.metrics, app.state.metrics_refresh)
    app.include_router(api.router)
    app.include_router(pages.router)
    _handlers(app)
    return app


def _storage_refresher(service: ConsoleService, metrics: GateMetrics) -> Callable[[], None]:
    """Stand-alone console: read outbox depth and cache age from the files before a scrape."""
    def refresh() -> None:
        try:
            depth, age = service.storage_figures()
        except Exception:  # a locked or missing file must not fail the whole scrape
            log.exception("could not read outbox depth and cache age for /metrics")
            return
        metrics.set_outbox_depth(depth)
        metrics.set_cache_age(age)
    return refresh


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if _is_api(request) or request.url.path == "/events":
            return JSONResponse({"detail": "log in first (POST /api/v1/session)"}, 401)
        return RedirectResponse(f"/login?next={request.url.path}", 303)

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, exc: CsrfRejected) -> Response:
        msg = "CSRF token missing or wrong: reload the page and try again"
        if _is_api(request):
            return JSONResponse({"detail": msg}, 403)
        return _error_page(request, 403, msg)

    @app.exception_handler(PermissionDenied)
    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Exception) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": str(exc)}, 403)
        return _error_page(request, 403, str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": str(exc)}, 404)
        return _error_page(request, 404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": str(exc)}, 409)
        return _error_page(request, 409, str(exc))

    @app.exception_handler(FieldErrors)
    async def _fields(request: Request, exc: FieldErrors) -> Response:
        return JSONResponse({"detail": [{"loc": ["body", k], "msg": v, "type": "value_error"}
                                        for k, v in exc.errors.items()]}, 422)


def _error_page(request: Request, status: int, message: str) -> Response:
    return templates.TemplateResponse(request, "error.html",
                                      {"status": status, "message": message, "user": None},
                                      status_code=status)


def _prime_lanes(service: ConsoleService) -> None:
    """Show each lane's last passage until the daemon reports something newer."""
    for lane in service.cfg.lanes:
        rows = service.passages(lane=lane.id, limit=1)
        if rows:
            service.feed.publish_passage(passage_from_row(rows[0]))


def passage_from_row(row: PassageRow) -> Any:
    """The typed Passage of a stored row."""
    from edge.domain.model import Passage
    from edge.store.db import from_iso
    from edge.store.records import reads_of

    return Passage(id=row.id, lane=row.lane, started_at=from_iso(row.started_at),
                   ended_at=from_iso(row.ended_at) if row.ended_at else None, reads=reads_of(row),
                   decision=row.decision, barrier_events=tuple(row.barrier_events),
                   evidence=tuple(row.evidence))


async def _watch(service: ConsoleService) -> None:
    """Publish passages other processes add to records.db (stand-alone console)."""
    interval = service.cfg.console.watch_interval.total_seconds()
    since = await asyncio.to_thread(service.newest_update)
    while True:
        await asyncio.sleep(interval)
        try:
            rows = await asyncio.to_thread(service.latest_changes, since)
        except Exception:
            log.exception("could not read new passages from records.db")
            continue
        for row, updated_at in rows:
            since = max(since, updated_at)
            try:
                service.feed.publish_passage(passage_from_row(row))
            except Exception:
                log.exception("passage %s in records.db could not be shown", row.id)


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling: the daemon owns SIGTERM and stops us in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave the process's signal handlers alone."""
        yield


def serve(app: FastAPI, host: str, port: int, *, log_level: str = "warning",
          certfile: Path | None = None, keyfile: Path | None = None) -> uvicorn.Server:
    """A uvicorn server for ``app``; the daemon runs ``await server.serve()`` as a task.

    Stop it with ``server.should_exit = True`` and await the task; ``server.started`` turns
    True once the socket listens.
    """
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            proxy_headers=False, server_header=False,
                            ssl_certfile=str(certfile) if certfile else None,
                            ssl_keyfile=str(keyfile) if keyfile else None,
                            timeout_graceful_shutdown=5)  # open SSE streams must not hang a stop
    return EmbeddedServer(config)
