"""The ``gate-edge`` command: parse arguments, load config, hand over to the part asked for.

Each sub-command lives in its own module; this file only assembles them so ``--help`` lists
everything a gate engineer can do.
"""

from __future__ import annotations

from enum import StrEnum

import typer

from edge.cli import (
    audit_cmd,
    config_cmd,
    demo,
    manifests,
    match_cmd,
    plates,
    run_cmd,
    seals_cmd,
    sync,
)
from edge.console import cli as console_cli
from edge.logging_setup import configure_logging


class LogLevel(StrEnum):
    """Log levels offered on the command line."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


app = typer.Typer(
    name="gate-edge",
    help=(
        "Edge service of a smart customs border gate: reads plates and seals, matches trucks "
        "against pre-cleared manifests, drives the barrier through gate-controller, syncs with "
        "the centre over MQTT and serves the officer console.\n\n"
        "Start here:\n\n\b\n"
        "  gate-edge demo                                   # sample trucks through the matcher\n"
        "  gate-edge run -c /etc/gate-edge/gate-edge.yaml   # the gate daemon (systemd runs it)\n"
        "  gate-edge validate-config /etc/gate-edge/gate-edge.yaml\n"
        "  gate-edge manifests import declarations.jsonl -c gate-edge.yaml\n"
        "  gate-edge match reads.json -c gate-edge.yaml      # what would the gate decide?"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    log_level: LogLevel | None = typer.Option(
        None, "--log-level", envvar="GATE_EDGE_LOG", case_sensitive=False,
        help="DEBUG shows raw serial frames in hex; INFO (the default of 'run') is right for "
             "a running gate; other commands default to WARNING."),
) -> None:
    configure_logging(log_level.value if log_level else "WARNING")
    ctx.obj = {"log_level_set": log_level is not None}


app.command("run")(run_cmd.run)
app.command("validate-config")(config_cmd.validate_config)
app.command("match")(match_cmd.match)
app.command("demo")(demo.demo)
app.add_typer(manifests.app, name="manifests")
app.add_typer(manifests.hotlist_app, name="hotlist")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(seals_cmd.app, name="seals")
app.add_typer(sync.keys_app, name="keys")
app.add_typer(sync.sync_app, name="sync")
app.add_typer(console_cli.users_app, name="users")
app.command("console")(console_cli.console)
app.add_typer(plates.app, name="plates")


def main() -> None:
    """Console-script entry point."""
    app()
