"""``gate-edge run``: the checkpoint daemon (what ``gate-edge.service`` starts)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from edge.cli.common import CONFIG_OPTION, fail, load_or_exit, resolve_config_path
from edge.config import GateEdgeConfig
from edge.logging_setup import configure_logging
from edge.metrics import GateMetrics

# sysexits.h EX_CONFIG: gate-edge.service does not restart on it (a typo needs a person).
EX_CONFIG = 78


def run(
    ctx: typer.Context,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Run the gate: cameras, seal readers, matcher, barrier links, MQTT sync and the console.

    Example: gate-edge run -c /etc/gate-edge/gate-edge.yaml

    Starts every part of the config in order (stores, central sync, lanes, officer console,
    gate-controller links, seal readers, cameras) and stops them in reverse on SIGTERM or
    Ctrl-C, after the passage in progress is decided and recorded. Prometheus metrics are at
    /metrics on the console, or, with console.enabled: false, on console.metrics_port when
    set; the log says where. Logs at INFO unless
    --log-level (before 'run') says otherwise. Check a config first with
    'gate-edge validate-config FILE' (exit status 78 for a config error). Barriers stay
    safe without this process: each gate-controller refuses new openings once heartbeats
    stop.
    """
    if not (ctx.obj or {}).get("log_level_set"):
        configure_logging("INFO")
    cfg = load_or_exit(config, code=EX_CONFIG)
    from edge.daemon.app import GateEdgeDaemon, StartupError

    daemon = GateEdgeDaemon(cfg, metrics=_metrics(cfg))
    typer.echo(f"gate-edge {cfg.site.code}: starting from {resolve_config_path(config)}",
               err=True)
    try:
        asyncio.run(daemon.serve())
    except StartupError as exc:
        raise fail(str(exc), code=1) from None
    except KeyboardInterrupt:
        pass


def _metrics(cfg: GateEdgeConfig) -> GateMetrics:
    return GateMetrics(cfg.site.code, [lane.id for lane in cfg.lanes])
