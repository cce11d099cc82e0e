"""``GET /metrics``: the Prometheus scrape endpoint of the console's web server.

Prometheus scrapes without a browser session, so this route needs no login and no CSRF token
(it is a GET that changes nothing) and never touches the session: no cookie is set on the
answer. Access is limited by client network instead (``console.metrics_allow``: loopback and
private ranges by default), checked against the socket's peer address; ``serve()`` runs uvicorn
with ``proxy_headers=False``, so a client cannot claim another address in a header. Where the
officers' PCs share those private ranges, a bearer token (``console.metrics_token_env`` or the
systemd credential) narrows it to the scraper that holds it.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from edge.metrics import GateMetrics

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


def _allowed(request: Request) -> tuple[bool, str]:
    """Whether the peer may scrape, and its address for the message and the log."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False, host or "an unknown address"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.0.0.5 on a dual-stack socket is 10.0.0.5
    networks = request.app.state.metrics_networks
    return any(address in net for net in networks if net.version == address.version), host


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format (OpenMetrics when the scraper asks for it in Accept)."""
    cfg = request.app.state.service.cfg.console
    if not cfg.metrics_enabled:
        return PlainTextResponse("metrics are switched off (console.metrics_enabled: false)\n", 404)
    ok, host = _allowed(request)
    if not ok:
        log.warning("refused /metrics to %s: not in console.metrics_allow", host)
        return PlainTextResponse(
            f"403 Forbidden: {host} may not read /metrics; add its network to "
            "console.metrics_allow in the gate-edge config\n", 403)
    token: str | None = request.app.state.metrics_token
    if token is not None:
        supplied = request.headers.get("authorization", "")
        scheme, _, credentials = supplied.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                credentials.strip().encode(), token.encode()):
            log.warning("refused /metrics to %s: %s bearer token", host,
                        "wrong" if supplied else "no")
            return PlainTextResponse(
                "401 Unauthorized: send the scrape token as 'Authorization: Bearer TOKEN' "
                f"(console.metrics_token_env {cfg.metrics_token_env})\n", 401,
                headers={"WWW-Authenticate": 'Bearer realm="gate-edge metrics"'})
    gate_metrics: GateMetrics = request.app.state.metrics
    refresh = request.app.state.metrics_refresh
    if refresh is not None:
        refresh()
    body, content_type = gate_metrics.render(request.headers.get("accept"))
    return Response(body, media_type=None, headers={"Content-Type": content_type})
