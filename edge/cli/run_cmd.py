"""``gate-edge run``: the checkpoint daemon (what ``gate-edge.service`` starts)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from edge.cli.common import CONFIG_OPTION, fail, load_or_exit, resolve_config_path
from edge.logging_setup import configure_logging


def run(
    ctx: typer.Context,
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Run the gate: cameras, seal readers, matcher, barrier links, MQTT sync and the console.

    Example: gate-edge run -c /etc/gate-edge/gate-edge.yaml

    Starts every part of the config in order (stores, central sync, lanes, officer console,
    gate-controller links, seal readers, cameras) and stops them in reverse on SIGTERM or
    Ctrl-C, after the passage in progress is decided and recorded. Logs at INFO unless
    --log-level (before 'run') says otherwise. Check a config first with
    'gate-edge validate-config FILE'. Barriers stay safe without this process: each
    gate-controller refuses new openings once heartbeats stop.
    """
    if not (ctx.obj or {}).get("log_level_set"):
        configure_logging("INFO")
    cfg = load_or_exit(config)
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


def _metrics(cfg: object) -> object | None:
    try:
        from edge.metrics import GateMetrics  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    site = getattr(getattr(cfg, "site", None), "code", "")
    lanes = [lane.id for lane in getattr(cfg, "lanes", [])]
    return GateMetrics(site, lanes)
