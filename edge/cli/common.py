"""Options and helpers shared by the sub-commands (config discovery, opening the stores)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from edge.config import ConfigError, GateEdgeConfig, load_config

DEFAULT_CONFIG = Path("/etc/gate-edge/gate-edge.yaml")

CONFIG_OPTION = typer.Option(
    None, "--config", "-c", envvar="GATE_EDGE_CONFIG",
    help=f"gate-edge YAML file (default: $GATE_EDGE_CONFIG, then {DEFAULT_CONFIG}).",
)


def resolve_config_path(path: Path | None) -> Path:
    """The config file to use: the option, the environment, or the system default."""
    if path is not None:
        return path
    env = os.environ.get("GATE_EDGE_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG


def load_or_exit(path: Path | None, *, code: int = 1) -> GateEdgeConfig:
    """Load the config, or print every problem and exit 1 (no traceback for a config typo)."""
    chosen = resolve_config_path(path)
    try:
        return load_config(chosen)
    except ConfigError as exc:
        typer.echo(exc.render(), err=True)
        typer.echo(f"\nrun 'gate-edge validate-config {chosen}' after fixing", err=True)
        raise typer.Exit(code) from None


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error for a person and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
