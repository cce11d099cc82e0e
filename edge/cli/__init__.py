"""The ``gate-edge`` command: parse arguments, load config, hand over to the part asked for.

Each sub-command lives in its own module; this file only assembles them so ``--help`` lists
everything a gate engineer can do.
"""

from __future__ import annotations

import typer

from edge.cli import config_cmd, demo, manifests, match_cmd, plates
from edge.logging_setup import configure_logging

app = typer.Typer(
    name="gate-edge",
    help=(
        "Edge service of a smart customs border gate: reads plates and seals, matches trucks "
        "against pre-cleared manifests, drives the barrier through gate-controller, syncs with "
        "the centre over MQTT and serves the officer console.\n\n"
        "Start here:\n\n"
        "  gate-edge demo                                   # whole gate on simulated hardware\n\n"
        "  gate-edge validate-config /etc/gate-edge/gate-edge.yaml\n\n"
        "  gate-edge manifests import declarations.jsonl -c gate-edge.yaml\n\n"
        "  gate-edge match reads.json -c gate-edge.yaml      # what would the gate decide?"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    log_level: str = typer.Option(
        "WARNING", "--log-level", envvar="GATE_EDGE_LOG",
        help="DEBUG shows raw serial frames in hex; INFO is right for a running gate."),
) -> None:
    configure_logging(log_level)


app.command("validate-config")(config_cmd.validate_config)
app.command("match")(match_cmd.match)
app.command("demo")(demo.demo)
app.add_typer(manifests.app, name="manifests")
app.add_typer(manifests.hotlist_app, name="hotlist")
app.add_typer(plates.app, name="plates")


def main() -> None:
    """Console-script entry point."""
    app()
