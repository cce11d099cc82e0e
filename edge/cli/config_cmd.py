"""``gate-edge validate-config``: check a config file before a gate depends on it."""

from __future__ import annotations

from pathlib import Path

import typer

from edge.config import ConfigError, load_config


def validate_config(
    file: Path = typer.Argument(..., help="gate-edge YAML file to check."),
) -> None:
    """Check a gate-edge config file and report every problem with line, key and fix.

    Exit status 0 when the file is usable, 1 when it is not. Example:

        gate-edge validate-config /etc/gate-edge/gate-edge.yaml

        gate-edge.yaml:14:5: lanes[0].relay_board: unknown relay board 'board9'
            fix: define it under 'relay_boards' or use one of ['board1', 'board2']
    """
    try:
        cfg = load_config(file)
    except ConfigError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{file}: OK — site {cfg.site.code} ({cfg.site.name}), {len(cfg.lanes)} lane(s), "
        f"{len(cfg.cameras)} camera(s), {len(cfg.seal_readers)} seal reader(s), "
        f"{len(cfg.relay_boards)} relay board(s), MQTT {'on' if cfg.mqtt.enabled else 'off'}"
    )
