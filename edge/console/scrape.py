"""``GET /metrics``: the Prometheus scrape endpoint, on the console's server or on its own.

Prometheus scrapes without a browser session, so this route needs no login and no CSRF token
(it is a GET that changes nothing) and never touches the session: no cookie is set on the
answer. Access is limited by client network instead (``console.metrics_allow``: loopback and
private ranges by default), checked against the socket's peer address; ``serve()`` runs uvicorn
with ``proxy_headers=False``, so a client cannot claim another address in a header. Where the
officers' PCs share those private ranges, a bearer token (``console.metrics_token_env`` or the
systemd credential) narrows it to the scraper that holds it.

Two apps carry this one route: the console (``create_app`` calls :func:`attach`) and, when the
console is off, :func:`create_metrics_app` (``console.metrics_port``), so both answer a scraper
with the same guard and the same messages.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from edge.config.console import ConsoleConfig
from edge.metrics import GateMetrics

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class ScrapeGuard:
    """What ``GET /metrics`` needs: the config it names in refusals, who may scrape, the data."""

    config: ConsoleConfig
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    token: str | None
    metrics: GateMetrics
    #: Called before each scrape (stand-alone console: read figures from the files), or None.
    refresh: Callable[[], None] | None = None


def attach(app: FastAPI, config: ConsoleConfig, metrics: GateMetrics,
           refresh: Callable[[], None] | None = None) -> None:
    """Serve ``GET /metrics`` from ``app`` with ``config``'s allow-list and token.

    The token is read here, once: a token shorter than 16 characters raises ValueError before
    anything listens, and a scrape never reads the environment or a credential file.
    """
    app.state.scrape = ScrapeGuard(
        config, config.metrics_networks(),
        config.metrics_token() if config.metrics_enabled else None, metrics, refresh)
    app.include_router(router)


def create_metrics_app(config: ConsoleConfig, metrics: GateMetrics) -> FastAPI:
    """A web app with ``GET /metrics`` only: ``gate-edge run`` with the console off."""
    app = FastAPI(title="gate-edge metrics", docs_url=None, redoc_url=None, openapi_url=None)
    attach(app, config, metrics)
    return app


def _allowed(request: Request, guard: ScrapeGuard) -> tuple[bool, str]:
    """Whether the peer may scrape, and its address for the message and the log."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False, host or "an unknown address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.5 on a dual-stack socket is 10.0.0.5
    return any(address in net for net in guard.networks if net.version == address.version), host


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format (OpenMetrics when the scraper asks for it in Accept)."""
    guard: ScrapeGuard = request.app.state.scrape
    cfg = guard.config
    if not cfg.metrics_enabled:
        return PlainTextResponse("metrics are switched off (console.metrics_enabled: false)\n", 404)
    ok, host = _allowed(request, guard)
    if not ok:
        log.warning("refused /metrics to %s: not in console.metrics_allow", host)
        return PlainTextResponse(
            f"403 Forbidden: {host} may not read /metrics; add its network to "
            "console.metrics_allow in the gate-edge config\n", 403)
    if guard.token is not None:
        supplied = request.headers.get("authorization", "")
        scheme, _, credentials = supplied.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                credentials.strip().encode(), guard.token.encode()):
            log.warning("refused /metrics to %s: %s bearer token", host,
                        "wrong" if supplied else "no")
            return PlainTextResponse(
                "401 Unauthorized: send the scrape token as 'Authorization: Bearer TOKEN' "
                f"(console.metrics_token_env {cfg.metrics_token_env})\n", 401,
                headers={"WWW-Authenticate": 'Bearer realm="gate-edge metrics"'})
    if guard.refresh is not None:
        guard.refresh()
    body, content_type = guard.metrics.render(request.headers.get("accept"))
    return Response(body, media_type=None, headers={"Content-Type": content_type})
